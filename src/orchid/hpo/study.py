"""Build a study in Python: a workflow with one hpo work, checked like any template.

::

    from orchid import hpo

    study = hpo.Study(
        "tune-svc",
        function="digits:objective",                 # module:function, called per trial
        space={
            "C": hpo.real(1e-2, 1e3, log=True),
            "kernel": hpo.choice("rbf", "poly"),
            "degree": hpo.integer(2, 5, when="kernel == 'poly'"),
        },
        max_trials=40, parallel=4, strategy="tpe", seed=1,
    )
    result = study.run(home=Path(".orchid"))         # here, in-process (SQLite, local jobs)
    print(result.best)
    # or through any orchid.backend.Backend: study.run(RemoteBackend(Client.from_config()))
    # or submit and return at once: study.submit(backend) (a workflow id), study.submit(client)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from orchid.core.hpo import Direction, Scalar
from orchid.engine.templates import compile_template

if TYPE_CHECKING:
    from orchid.backend.base import Backend
    from orchid.client import Client
    from orchid.wire import WorkflowOut

POLL_S = 0.05  # how often run() looks whether the study's workflow ended


def real(
    low: float,
    high: float,
    *,
    log: bool = False,
    step: float | None = None,
    when: str | None = None,
) -> dict[str, Any]:
    """A float parameter in [low, high]."""
    return _drop_none(
        {"type": "float", "low": low, "high": high, "log": log, "step": step, "when": when}
    )


def integer(
    low: int, high: int, *, log: bool = False, step: int = 1, when: str | None = None
) -> dict[str, Any]:
    """An int parameter in [low, high] (both included)."""
    return _drop_none(
        {"type": "int", "low": low, "high": high, "log": log, "step": step, "when": when}
    )


def choice(*choices: Scalar, when: str | None = None) -> dict[str, Any]:
    """One of the given values."""
    return _drop_none({"type": "categorical", "choices": list(choices), "when": when})


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class StudyResult:
    """A study that ran to its end here: its status, summary and every trial."""

    workflow_id: int
    status: str
    summary: Mapping[str, Any]
    trials: list[dict[str, Any]]

    @property
    def best(self) -> Mapping[str, Any] | None:
        """The best trial (single objective, no segments)."""
        best: Mapping[str, Any] | None = self.summary.get("best")
        return best


@dataclass(frozen=True)
class Study:
    """A workflow that runs one payload per trial. Exactly one of ``function`` and
    ``command`` (or ``mode="pull"`` for external workers); the other fields are those of
    the ``hpo`` block (docs/templates.md)."""

    name: str
    space: Mapping[str, Mapping[str, Any]]
    max_trials: int
    function: str | None = None
    command: Sequence[str] | None = None
    objective: str = "loss"
    direction: Direction = "minimize"
    objectives: Sequence[tuple[str, Direction]] | None = None
    parallel: int = 1
    strategy: str = "tpe"
    options: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    pruner: Mapping[str, Any] | None = None
    segments: Mapping[str, Mapping[str, Any]] | None = None
    mode: str = "jobs"
    generator: Sequence[str] | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    retries: int = 0
    work: str = "tune"

    def template(self) -> dict[str, Any]:
        """The workflow template; raises TemplateError (with paths) if anything is wrong."""
        spec: dict[str, Any] = {
            "space": {k: dict(v) for k, v in self.space.items()},
            "max_trials": self.max_trials,
            "parallel": self.parallel,
            "strategy": self.strategy,
            "options": dict(self.options),
            "mode": self.mode,
        }
        if self.objectives:
            spec["objectives"] = [{"name": n, "direction": d} for n, d in self.objectives]
        else:
            spec.update(objective=self.objective, direction=self.direction)
        for key in ("seed", "pruner", "segments", "generator"):
            value = getattr(self, key)
            if value is not None:
                spec[key] = list(value) if key == "generator" else value
        work: dict[str, Any] = {"name": self.work, "hpo": spec, "retries": self.retries}
        if self.function is not None:
            work["function"] = self.function
        if self.command is not None:
            work["command"] = list(self.command)
        if self.parameters:
            work["parameters"] = dict(self.parameters)
        raw = {"name": self.name, "works": [work]}
        compile_template(raw)
        return raw

    @overload
    def submit(self, to: Client) -> WorkflowOut: ...
    @overload
    def submit(self, to: Backend, *, base_dir: Path | None = None) -> int: ...

    def submit(self, to: Backend | Client, *, base_dir: Path | None = None) -> WorkflowOut | int:
        """Submit and return at once: through a :class:`~orchid.backend.base.Backend`, the
        workflow id (``base_dir``: where ``function``'s module is imported from, for the
        embedded engine); to a server's client, the workflow (follow it with
        ``client.hpo.study_of(wf.id)``)."""
        from orchid.client import Client

        if isinstance(to, Client):
            return to.submit(self.template())
        return to.submit(self.template(), base_dir=base_dir)

    def run(
        self,
        backend: Backend | None = None,
        *,
        home: Path | None = None,
        workers: int = 4,
        base_dir: Path | None = None,
    ) -> StudyResult:
        """Run to the end through ``backend`` and return what happened. Without one: here,
        in-process (SQLite in ``home``, ``workers`` jobs at a time on this machine);
        ``base_dir`` is where ``function``'s module is imported from (default: the current
        folder)."""
        from orchid.core.states import TERMINAL_WORKFLOW

        own = backend is None
        if backend is None:
            if home is None:
                raise TypeError("Study.run() needs a backend, or a home to run in")
            backend = _here(home, workers)
            backend.start()
        try:
            wf = self.submit(backend, base_dir=base_dir or Path.cwd())
            while (status := backend.workflow_status(wf)[0]) not in TERMINAL_WORKFLOW:
                backend.wait(wf, POLL_S)
            summary, trials = backend.study(wf)
        finally:
            if own:
                backend.stop()
        return StudyResult(wf, status, summary, trials)


def _here(home: Path, workers: int) -> Backend:
    """The embedded engine in ``home`` with agents of its own, as ``orchid.testing`` runs."""
    from orchid.backend.embedded import EmbeddedBackend
    from orchid.settings import Settings

    settings = Settings.load(
        env={},
        home=home,
        db=str(home / "orchid.db"),
        executor="local",
        workers=workers,
        poll_interval=POLL_S,
    )
    return EmbeddedBackend(settings, run_agents=True)
