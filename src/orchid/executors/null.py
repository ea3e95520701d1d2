"""An executor that runs nothing: every job succeeds the moment it is submitted.

For benchmarks of the engine and the store, where the cost of running jobs must not
show: ``submit`` queues one ``succeeded`` update per job and ``poll`` drains them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from orchid.core.model import NO_USAGE
from orchid.executors.base import BuildContext, ExecutorOptions, JobSpec, JobUpdate, WakeUp


class NullOptions(ExecutorOptions):
    pass


class NullExecutor:
    """Completes every submitted job instantly with exit code 0 and result None."""

    name = "null"
    durable = False
    options_model: ClassVar[type[ExecutorOptions]] = NullOptions

    @classmethod
    def from_config(cls, options: Any, context: BuildContext) -> NullExecutor:
        executor = cls(wake=context.wake)
        executor.name = context.name
        return executor

    def __init__(self, wake: WakeUp | None = None, clock: Callable[[], float] = time.time) -> None:
        self._wake = wake
        self._clock = clock
        self._lock = threading.Lock()
        self._updates: list[JobUpdate] = []

    def capacity(self) -> int:
        """Effectively unlimited: jobs never occupy a slot."""
        return 100_000

    def submit(self, jobs: Sequence[JobSpec]) -> None:
        """Record a ``succeeded`` update per job, all stamped with one clock reading."""
        if not jobs:
            return
        now = self._clock()
        updates = [
            JobUpdate(j.key, j.job_id, j.attempt, "succeeded", now, exit_code=0, usage=NO_USAGE)
            for j in jobs
        ]
        with self._lock:
            self._updates.extend(updates)
        if self._wake is not None:
            self._wake()

    def poll(self) -> list[JobUpdate]:
        """Every update since the last call, oldest first."""
        with self._lock:
            updates, self._updates = self._updates, []
        return updates

    def cancel(self, keys: Sequence[str]) -> None:
        """Nothing runs, so there is nothing to stop."""

    def close(self) -> None:
        """Nothing to release."""
