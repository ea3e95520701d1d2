"""An executor whose jobs only take time: each runs for a set number of seconds on a clock.

For simulations and benchmarks (the data carousel bench runs it on an accelerated
clock): ``slots`` jobs run at once, each succeeding ``seconds`` after it started.
Nothing is executed.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Sequence

from orchid.executors.base import JobSpec, JobUpdate, Usage, WakeUp


class SleepExecutor:
    """Jobs that succeed ``seconds`` (of ``clock``) after they start, ``slots`` at a time."""

    name = "sleep"
    durable = False

    def __init__(
        self,
        seconds: float,
        *,
        slots: int = 1000,
        clock: Callable[[], float] = time.time,
        wake: WakeUp | None = None,
    ) -> None:
        if seconds < 0 or slots < 1:
            raise ValueError("seconds must be >= 0 and slots >= 1")
        self.seconds = seconds
        self.slots = slots
        self._clock = clock
        self._wake = wake
        self._lock = threading.Lock()
        self._running: list[tuple[float, int, JobSpec]] = []  # (ends at, seq, job)
        self._seq = 0
        self._updates: list[JobUpdate] = []

    def capacity(self) -> int:
        with self._lock:
            return self.slots - len(self._running)

    def submit(self, jobs: Sequence[JobSpec]) -> None:
        now = self._clock()
        with self._lock:
            for j in jobs:
                self._seq += 1
                heapq.heappush(self._running, (now + self.seconds, self._seq, j))
                self._updates.append(JobUpdate(j.key, j.job_id, j.attempt, "running", now))
        if jobs and self._wake is not None:
            self._wake()

    def poll(self) -> list[JobUpdate]:
        now = self._clock()
        with self._lock:
            while self._running and self._running[0][0] <= now:
                ends, _, j = heapq.heappop(self._running)
                self._updates.append(
                    JobUpdate(
                        j.key,
                        j.job_id,
                        j.attempt,
                        "succeeded",
                        ends,
                        exit_code=0,
                        usage=Usage(wall_s=self.seconds),
                    )
                )
            updates, self._updates = self._updates, []
        return updates

    def cancel(self, keys: Sequence[str]) -> None:
        wanted = set(keys)
        now = self._clock()
        with self._lock:
            kept = [r for r in self._running if r[2].key not in wanted]
            for _, _, j in self._running:
                if j.key in wanted:
                    self._updates.append(
                        JobUpdate(j.key, j.job_id, j.attempt, "failed", now, error="cancelled")
                    )
            self._running = kept
            heapq.heapify(self._running)

    def close(self) -> None:
        with self._lock:
            self._running.clear()
