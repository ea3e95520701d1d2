"""Compiled templates: parsed and analysed once, cached by workflow (templates never change)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy.engine import Connection

from orchid.core.limits import DEFAULT, Limits
from orchid.core.plan import Planner
from orchid.core.retry import RetryPolicy
from orchid.core.template import Template, executor_of, parse_template, retry_policy
from orchid.core.validate import Analysis, analyse
from orchid.executors.base import Payload, Resources
from orchid.store import workflows


@dataclass(frozen=True)
class Compiled:
    template: Template
    analysis: Analysis
    planner: Planner
    base_dir: str | None = None

    @property
    def limits(self) -> Limits:
        """The size limits its expressions and jobs are held to."""
        return self.planner.limits

    def where(self, work: str) -> str:
        """A work's path in the template, for messages: ``works[0](sim)``."""
        return self.planner.where.get(work, f"works.{work}")

    @cached_property
    def names(self) -> frozenset[str]:
        return frozenset(self.planner.specs)

    def max_attempts(self, work: str) -> int:
        """Attempts a job of the work gets, the first included (its policy's)."""
        return self.retry_policy(work).maximum_attempts

    def retry_policy(self, work: str) -> RetryPolicy:
        """How the work's failed jobs run again (see :func:`retry_policy`)."""
        return retry_policy(self.template, work)

    def executor(self, work: str) -> str | None:
        """The executor a work names (or the template's default); None: the agents' default."""
        return executor_of(self.template, work)

    def payload(self, work: str, job: str = "") -> Payload:
        """What the jobs of a work run; a custom HPO generator's jobs (``gen:...``) run the
        generator command instead of the trial payload."""
        spec = self.template.work(work)
        common: dict[str, Any] = {
            "env": dict(spec.env),
            "workdir": self.base_dir,
            "python_path": (self.base_dir,) if self.base_dir else (),
        }
        if spec.hpo is not None and spec.hpo.generator and job.startswith("gen:"):
            return Payload(kind="command", command=tuple(spec.hpo.generator), **common)
        if spec.command:
            return Payload(kind="command", command=tuple(spec.command), **common)
        if spec.function:
            return Payload(kind="function", function=spec.function, **common)
        return Payload(kind="noop", **common)

    def resources(self, work: str) -> Resources:
        r = self.template.work(work).resources
        return Resources(
            cores=r.cores, memory_mb=r.memory_mb, gpus=r.gpus, walltime_s=r.walltime, queue=r.queue
        )


def compile_template(raw: Any, base_dir: str | None = None, limits: Limits = DEFAULT) -> Compiled:
    """Parse and analyse; raises TemplateError with every problem. ``limits`` bound what
    its expressions build and its jobs' arguments."""
    t = parse_template(raw)
    a = analyse(t)
    t = a.flat or t  # nested workflows run expanded (core/nested.py)
    return Compiled(t, a, Planner(t, a, limits), base_dir)


class TemplateCache:
    """Workflow id → compiled template, bounded (least recently used go first).

    A template only ever grows (an open workflow gets works added, never changed), so a
    cached one is right about every work it knows: ``get`` reloads it only when asked
    about a work it does not know yet.
    """

    def __init__(self, size: int = 256, limits: Limits = DEFAULT) -> None:
        self._items: OrderedDict[int, Compiled] = OrderedDict()
        self._size = size
        self.limits = limits

    def get(self, conn: Connection, workflow_id: int, works: Iterable[str] = ()) -> Compiled:
        """The compiled template of a workflow that knows each of ``works``."""
        hit = self._items.get(workflow_id)
        if hit is not None and not all(name in hit.planner.specs for name in works):
            hit = None
        if hit is not None:
            self._items.move_to_end(workflow_id)
            return hit
        raw, base_dir = workflows.template_of(conn, workflow_id)
        compiled = compile_template(raw, base_dir, self.limits)
        self._items[workflow_id] = compiled
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return compiled
