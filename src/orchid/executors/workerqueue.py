"""The ``worker`` executor type: a queue whose jobs Orchid workers run, not the agents.

A section ``[executors.NAME]`` with ``type = "worker"`` names a queue. Works that name it
are routed to it at submission like any executor's (``store.routes``); the agents keep a
carrier for it that starts nothing (its capacity is 0) but still runs the carrier's
housekeeping for the queue's route: the jobs of a worker whose lease ran out are made
ready again by the same reclaim as any agent's. The jobs themselves are leased, renewed
and reported by ``orchid worker`` processes through the API (``engine.workers``), each with
a worker's token scoped to this queue (docs/architecture.md, "Orchid workers").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from orchid.errors import ExecutorError
from orchid.executors.base import BuildContext, ExecutorOptions, JobSpec, JobUpdate

WORKER_TYPE = "worker"


class WorkerQueueOptions(ExecutorOptions):
    pass


class WorkerQueue:
    """The agents' side of a worker queue: it takes no job (see the module docstring)."""

    name = WORKER_TYPE
    durable = False
    options_model: ClassVar[type[ExecutorOptions]] = WorkerQueueOptions

    @classmethod
    def from_config(cls, options: Any, context: BuildContext) -> WorkerQueue:
        queue = cls()
        queue.name = context.name
        return queue

    def capacity(self) -> int:
        """Always 0: Orchid workers lease this queue's jobs through the API."""
        return 0

    def submit(self, jobs: Sequence[JobSpec]) -> None:
        if jobs:
            raise ExecutorError(
                f"executor {self.name!r} is a worker queue: `orchid worker` runs its jobs"
            )

    def poll(self) -> list[JobUpdate]:
        return []

    def cancel(self, keys: Sequence[str]) -> None:
        """Nothing runs here: a worker learns of cancellations when it renews its leases."""

    def close(self) -> None:
        pass
