"""An Orchid worker behind the executor seam, for the executor contract suite.

:class:`MemoryDesk` plays the server's side of the worker protocol in memory (leases,
renewals that announce cancellations, reports refused for attempts not held, log tails
written with the server's own ``engine.workers.write_logs``); every message crosses it as
JSON text, as over HTTP. :class:`WorkerAsExecutor` hands submitted specs to the desk, runs
a real :class:`~orchid.worker.Worker` (with a real local executor) in a thread, and polls
what the worker reported: the contract suite then tests the whole worker path.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from orchid.engine.workers import write_logs
from orchid.errors import LeaseLost
from orchid.executors._process import AttemptFiles
from orchid.executors.base import JobSpec, JobUpdate
from orchid.executors.local import LocalExecutor
from orchid.executors.workerwire import (
    Attempt,
    LeaseIn,
    LeaseOut,
    ReleaseIn,
    ReleaseOut,
    RenewIn,
    RenewOut,
    ReportIn,
    ReportOut,
    WorkerJob,
)
from orchid.worker import Worker, WorkerOptions

M = TypeVar("M", bound=BaseModel)
LEASE_S = 1.5


def wire(model: M) -> M:
    """The model as the other side reads it: through JSON text."""
    return type(model).model_validate_json(model.model_dump_json())


class MemoryDesk:
    """The server's side of the worker protocol, in memory."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.lock = threading.Lock()
        self.ready: deque[WorkerJob] = deque()
        self.held: dict[tuple[int, int], WorkerJob] = {}
        self.cancelled: set[tuple[int, int]] = set()
        self.updates: list[JobUpdate] = []
        self.refusals = 0

    def add(self, specs: Sequence[JobSpec]) -> None:
        with self.lock:
            self.ready.extend(WorkerJob.of(s) for s in specs)

    def cancel(self, keys: Sequence[str]) -> set[str]:
        """Cancel these attempts; those still queued (dropped silently)."""
        dropped: set[str] = set()
        with self.lock:
            for key in keys:
                parts = key.split("-")
                if len(parts) != 3 or not all(p.isdigit() for p in parts):
                    continue  # not a key of ours: ignored
                _, job, attempt = (int(p) for p in parts)
                queued = [j for j in self.ready if (j.job_id, j.attempt) == (job, attempt)]
                for j in queued:  # never handed out: dropped silently
                    self.ready.remove(j)
                    dropped.add(key)
                if (job, attempt) in self.held:
                    self.cancelled.add((job, attempt))
        return dropped

    def take(self) -> list[JobUpdate]:
        with self.lock:
            out, self.updates = self.updates, []
        return out

    # --- the Lessor protocol ---------------------------------------------------------------

    def lease(self, body: LeaseIn) -> LeaseOut:
        body = wire(body)
        with self.lock:
            jobs = self._claim(body.max)
        return wire(LeaseOut(jobs=jobs, lease_s=LEASE_S))

    def _claim(self, most: int) -> list[WorkerJob]:
        jobs = [self.ready.popleft() for _ in range(min(most, len(self.ready)))]
        for j in jobs:
            self.held[j.job_id, j.attempt] = j
        return jobs

    def renew(self, body: RenewIn) -> RenewOut:
        body = wire(body)
        cancel: list[Attempt] = []
        lost: list[Attempt] = []
        with self.lock:
            for a in body.jobs:
                key = (a.job_id, a.attempt)
                job = self.held.get(key)
                if job is not None and key in self.cancelled:  # as mark_cancelled records it
                    del self.held[key]
                    cancel.append(a)
                    spec = job.spec()
                    self.updates.append(
                        JobUpdate(spec.key, a.job_id, a.attempt, "failed", 0.0, error="cancelled")
                    )
                elif job is None:
                    lost.append(a)
        return wire(RenewOut(lost=lost, cancel=cancel, lease_s=LEASE_S))

    def report(self, body: ReportIn) -> ReportOut:
        body = wire(body)
        with self.lock:
            refused = [(u.job_id, u.attempt) for u in body.updates]
            refused = [k for k in refused if k not in self.held]
            if refused:
                self.refusals += 1
                raise LeaseLost("not held", refused)
            for u in body.updates:
                job = self.held[u.job_id, u.attempt]
                uri = None
                if u.state != "running":
                    del self.held[u.job_id, u.attempt]
                    files = AttemptFiles.at(self.log_dir, job.workflow_id, u.job_id, u.attempt)
                    uri = write_logs(files, *u.tails())
                self.updates.append(u.update(job.workflow_id, uri))
            jobs = self._claim(body.want)  # as the server leases with a report
        lease_s = LEASE_S if jobs else None
        return wire(ReportOut(recorded=len(body.updates), jobs=jobs, lease_s=lease_s))

    def release(self, body: ReleaseIn) -> ReleaseOut:
        with self.lock:
            n = len(self.held)
            self.held.clear()
        return wire(ReleaseOut(released=n))


class WorkerAsExecutor:
    """An Executor whose jobs an Orchid worker leases, runs and reports (see the module)."""

    name = "worker"
    durable = False

    def __init__(self, tmp: Path, slots: int = 4) -> None:
        self.desk = MemoryDesk(tmp / "server-logs")
        self.slots = slots
        self._unfinished: set[str] = set()
        self._closed = False
        woken = threading.Event()
        local = LocalExecutor(slots, tmp / "worker-logs", wake=woken.set, kill_grace_s=1.0)
        options = WorkerOptions(name="contract-worker", poll_s=0.05)
        self.worker = Worker(self.desk, local, tmp / "worker-logs", options, woken=woken)
        self._thread = threading.Thread(target=self.worker.run, name="worker", daemon=True)
        self._thread.start()

    def capacity(self) -> int:
        return max(0, self.slots - len(self._unfinished))

    def submit(self, jobs: Sequence[JobSpec]) -> None:
        self._unfinished.update(j.key for j in jobs)
        self.desk.add(jobs)
        self.worker.wake()

    def poll(self) -> list[JobUpdate]:
        if self._closed:
            return []
        updates = self.desk.take()
        self._unfinished -= {u.key for u in updates if u.state != "running"}
        return updates

    def cancel(self, keys: Sequence[str]) -> None:
        self._unfinished -= self.desk.cancel(keys)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.worker.stop()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the worker did not stop"
