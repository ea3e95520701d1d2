"""The updates an executor has seen and not handed over yet, and the wake-up call.

Shared by the executors that follow jobs from threads of their own (Dask, PanDA,
HTCondor, Slurm): they ``push`` updates from any thread; the carrier's ``poll`` ``drain``s them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Container, Iterable, Sequence
from typing import Any, TypeVar

from orchid.executors.base import JobSpec, JobUpdate, UpdateState, Usage, WakeUp

logger = logging.getLogger(__name__)

T = TypeVar("T")


def pop_each(table: dict[str, T], keys: Iterable[str]) -> list[T]:
    """What ``table`` holds for ``keys``, removed from it (unknown keys are ignored): the
    jobs a cancel stops. The caller holds the lock that guards ``table``."""
    return [v for v in (table.pop(k, None) for k in keys) if v is not None]


class Updates:
    def __init__(self, name: str, wake: WakeUp | None, clock: Callable[[], float]) -> None:
        self._name = name
        self._wake = wake
        self._clock = clock
        self._lock = threading.Lock()
        self._items: list[JobUpdate] = []

    def make(
        self, spec: JobSpec, state: UpdateState, at: float | None = None, **fields: Any
    ) -> JobUpdate:
        """An update of ``spec``, stamped now unless ``at`` says when it happened."""
        if state == "succeeded" and fields.get("usage") is None:
            fields["usage"] = Usage()
        return JobUpdate(spec.key, spec.job_id, spec.attempt, state, at or self._clock(), **fields)

    def sort_out(
        self, jobs: Sequence[JobSpec], known: Container[str]
    ) -> tuple[list[JobSpec], list[JobUpdate]]:
        """What a batch executor does first with a batch: the attempts to start, and the
        updates of those ended here (``noop`` payloads succeed at once). Keys in ``known``
        (already submitted) are ignored, with a warning."""
        fresh: list[JobSpec] = []
        ended: list[JobUpdate] = []
        for spec in jobs:
            if spec.key in known:
                logger.warning("job %s: already submitted; ignored", spec.key)
            elif spec.payload.kind == "noop":
                ended.append(self.make(spec, "succeeded", exit_code=0))
            else:
                fresh.append(spec)
        return fresh, ended

    def push_end(
        self, lock: threading.Lock, table: dict[str, Any], key: str, job: object, end: JobUpdate
    ) -> None:
        """Hand over the ``end`` of ``job``, and drop it from ``table`` (guarded by ``lock``),
        unless it left the table meanwhile: it was cancelled, and that was reported."""
        with lock:
            if table.get(key) is not job:
                return
            del table[key]
        self.push(end)

    def push(self, *updates: JobUpdate) -> None:
        """Queue updates and wake the carrier."""
        if not updates:
            return
        with self._lock:
            self._items.extend(updates)
        if self._wake is not None:
            try:
                self._wake()
            except Exception:
                logger.exception("%s: wake-up callback failed", self._name)

    def drain(self) -> list[JobUpdate]:
        """Every update since the last call, oldest first."""
        with self._lock:
            items, self._items = self._items, []
        return items
