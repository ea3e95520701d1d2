"""The executor seam: what the carrier needs from a workload system.

An executor receives :class:`JobSpec` batches, runs them somewhere, and hands
back :class:`JobUpdate` records when a job starts or ends. It holds no policy:
retries, release of children and failure handling are the engine's. Every job
carries a deterministic ``key`` (workflow, job and attempt), so an executor
that survives a restart can recognise what it already runs and never run an
attempt twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict

from orchid.core.limits import DEFAULT as DEFAULT_LIMITS
from orchid.core.limits import Limits
from orchid.core.model import JobUpdate, UpdateState, Usage

PayloadKind = Literal["command", "function", "noop"]

__all__ = [
    "BuildContext",
    "Buildable",
    "Executor",
    "ExecutorOptions",
    "JobSpec",
    "JobUpdate",
    "Payload",
    "PayloadKind",
    "Planning",
    "Resources",
    "UpdateState",
    "Usage",
    "WakeUp",
    "WorkPlan",
]


@dataclass(frozen=True)
class Resources:
    """What a job asks of the machine that runs it."""

    cores: int = 1
    memory_mb: int | None = None
    gpus: int = 0
    walltime_s: float | None = None
    queue: str | None = None


@dataclass(frozen=True)
class Payload:
    """What to run. ``command`` items and ``function`` are templates: ``{name}`` takes a job arg.

    - ``command``: an argv list; each item has ``{arg}`` replaced by the job's argument.
    - ``function``: ``"package.module:function"``, imported on the worker and called with
      the job's arguments as keyword arguments; its return value is the result.
    - ``noop``: nothing; the job succeeds at once (benchmarks).
    """

    kind: PayloadKind
    command: tuple[str, ...] = ()
    function: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    python_path: tuple[str, ...] = ()


@dataclass(slots=True)
class JobSpec:
    """One attempt of one job, as the executor sees it. Executors do not change it (not
    frozen only because an agent makes thousands a second: see ``JobUpdate``)."""

    key: str  # deterministic: "<workflow>-<job>-<attempt>"
    workflow_id: int
    job_id: int
    attempt: int
    work_name: str
    job_name: str
    payload: Payload
    args: Mapping[str, Any]  # JSON values
    resources: Resources = Resources()
    env: Mapping[str, str] = field(default_factory=dict)  # this attempt's own (a job token)
    # re-sent by a carrier that took the job over from one that stopped: the executor looks
    # for this attempt on its backend (by key) before it starts it
    adopted: bool = False
    owner: str = ""  # the Orchid user whose workflow it is (the local executor's run_as)
    share_group: str | None = None  # the group the workflow is shared with

    @staticmethod
    def make_key(workflow_id: int, job_id: int, attempt: int) -> str:
        return f"{workflow_id}-{job_id}-{attempt}"


@runtime_checkable
class Executor(Protocol):
    """A workload system. Implementations: ``local``, ``null``, ``dask``, ``panda``,
    ``htcondor``, ``slurm`` (and ``worker``, a queue whose jobs ``orchid worker`` processes
    lease through the API).

    Executors whose jobs outlive the agent (a cluster, a grid, a batch system) also have
    ``durable = True``: ``close`` then leaves their jobs running, and a new executor handed
    the same attempts (``JobSpec.adopted``) re-attaches to them by key.
    """

    name: str
    durable: bool
    """Its jobs outlive it: ``close`` leaves them running, and the carrier adopts the jobs
    of a carrier that stopped (see :mod:`orchid.engine.carrier`)."""

    def capacity(self) -> int:
        """How many more jobs it would start now; the carrier claims no more than this."""
        ...

    def submit(self, jobs: Sequence[JobSpec]) -> None:
        """Start these attempts. Must not block on the jobs themselves."""
        ...

    def poll(self) -> list[JobUpdate]:
        """Updates observed since the last call, oldest first. Never blocks."""
        ...

    def cancel(self, keys: Sequence[str]) -> None:
        """Stop these attempts if they still run; unknown keys are ignored."""
        ...

    def close(self) -> None:
        """Release resources; stop every running attempt unless the executor is durable."""
        ...


@dataclass(frozen=True)
class WorkPlan:
    """Every job of one work, as the carrier knows them when it hands over the work's
    first job: for executors that make a backend task per work with all its jobs up
    front (PanDA/JEDI), and release each as its attempt arrives."""

    workflow_id: int
    work_id: int
    work_name: str
    payload_kind: PayloadKind
    resources: Resources
    jobs: tuple[tuple[int, int], ...]  # (job id, its maximum attempts)


@runtime_checkable
class Planning(Protocol):
    """An executor that wants each work's jobs before the first of them is submitted.

    The carrier calls ``plan`` (before ``submit``) once for each work it hands jobs of,
    and ``works_ended`` once such a work has ended in Orchid (its jobs all succeeded,
    failed, were cancelled or skipped), so the executor can close what it made for it.
    Both may be called again after a restart: they must be idempotent.
    """

    def plan(self, works: Sequence[WorkPlan]) -> None: ...

    def works_ended(self, works: Mapping[int, str]) -> None:
        """Work id → its final status."""
        ...


WakeUp = Callable[[], None]
"""Called by an executor (from any thread) when it has updates, to wake the carrier."""


class ExecutorOptions(BaseModel):
    """The keys of one ``[executors.NAME]`` section: each executor type has its model."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class BuildContext:
    """What an executor built from a settings section gets besides its options: where it
    writes, whom it wakes, and the settings' defaults for local executors (so executors
    never import the settings)."""

    name: str  # the section's NAME
    log_dir: Path
    wake: WakeUp | None = None
    namespace: str = "orchid"  # the default prefix of task names on a shared backend
    home: Path | None = None
    limits: Limits = DEFAULT_LIMITS
    workers: int = 1  # local executors: slots, unless their section says
    prefetch: int = 0  # local executors: jobs taken ahead of free slots
    reuse_workers: bool = False  # local executors: function jobs in long-lived workers
    run_as: str = ""  # local executors: the OS user jobs run as, unless their section says
    env_passthrough: str = ""  # local executors: more variables jobs get (comma-separated)
    brokers: Mapping[str, Any] = field(default_factory=dict)  # [brokers.NAME] sections

    @property
    def where(self) -> str:
        return f"[executors.{self.name}]"


class Buildable(Protocol):
    """An executor type the registry can make from a settings section."""

    options_model: ClassVar[type[ExecutorOptions]]

    @classmethod
    def from_config(cls, options: Any, context: BuildContext) -> Self:
        """The executor an ``options_model`` instance and the context describe."""
        ...
