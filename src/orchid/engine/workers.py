"""The server's side of Orchid workers: leasing, renewing, recording and giving back jobs
of a worker queue, for the API's ``/workers`` routes.

Nothing here is new policy: a worker is one more owner of leases. Jobs are claimed with
the carrier's statement (``store.dispatch.claim_ready``, narrowed to the queue's route),
their specs made as the carrier makes them (``engine.jobspecs``), their ends recorded by
the carrier's ``store.dispatch.record`` (retries, failure reasons; the trigger passes them
on, children released, as for every end it finds), and a worker that stops gives its jobs
back with the carrier's ``give_back``. A lease that runs out is re-run by the carriers'
reclaim. What is the worker's own is the check before it reports or renews: an attempt it
no longer holds (``store.workerleases``) refuses the whole report with
:class:`~orchid.errors.LeaseLost` (HTTP 409) and nothing is recorded, so no attempt is
recorded twice (docs/architecture.md, "Orchid workers").
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Connection

from orchid.bus import announce
from orchid.core.limits import Limits
from orchid.engine.agent import ENDED, JOBS, STUDIES, WORKFLOWS
from orchid.engine.jobspecs import JobSpecs, capped
from orchid.engine.runner import log_folder
from orchid.engine.templates import TemplateCache
from orchid.engine.trigger import settle_works
from orchid.errors import InvalidInput, LeaseLost, NotFound
from orchid.executors._process import AttemptFiles
from orchid.executors.base import JobUpdate
from orchid.executors.workerqueue import WORKER_TYPE
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
from orchid.settings import Settings
from orchid.store import dispatch, release, workerleases
from orchid.store.db import Database
from orchid.store.routes import Route

log = logging.getLogger(__name__)


QUICK_CHILDREN = 1000
"""A report that may not wait (``wait=False``) passes on at most this many children of
its ends; more, and it is :class:`NotQuick` (a fan-out of thousands is seconds of work)."""


class NotQuick(Exception):
    """A call made with ``wait=False`` would take long (a large fan-out): nothing was done;
    make it where waiting is fine."""


def owner_of(queue: str, worker: str) -> str:
    """The lease owner of a worker of ``queue`` (the jobs' ``owner`` column, 64 characters):
    the same worker name under another queue's token is another owner."""
    return f"w:{hashlib.sha256(queue.encode()).hexdigest()[:8]}:{worker}"


class WorkerDesk:
    """Leases, renewals, reports and releases of the workers of one server's queues."""

    def __init__(
        self, settings: Settings, db: Database, clock: Callable[[], float] = time.time
    ) -> None:
        self._settings = settings
        self._db = db
        self._clock = clock
        self._lease = settings.lease_seconds
        self._limits: Limits = settings.limits
        self._specs = JobSpecs(TemplateCache(limits=settings.limits), clock)
        # requests run in the server's thread pool; the agents' caches are one thread's
        self._specs_lock = threading.Lock()
        self._queues = frozenset(
            name for name, cfg in settings.executors.items() if cfg.type == WORKER_TYPE
        )
        self._log_dir: Path | None = None

    def _route(self, queue: str, asked: str | None) -> Route:
        if asked is not None and asked != queue:
            raise InvalidInput(
                f"this worker's token serves queue {queue!r}, not {asked!r}", field="queue"
            )
        if queue not in self._queues:
            raise NotFound(
                f"no worker queue {queue!r} on this server: its settings need a section "
                f'[executors.{queue}] with type = "worker"'
            )
        return Route(queue, default=queue == self._settings.executor)

    def lease(self, queue: str, body: LeaseIn, *, wait: bool = True) -> LeaseOut:
        """Claim up to ``body.max`` ready jobs of the queue for this worker (``wait``: as
        ``Database.begin``'s)."""
        route = self._route(queue, body.queue)
        with self._db.begin(wait=wait) as conn:
            jobs = self._claim(conn, route, body.worker, body.max)
        return LeaseOut(jobs=jobs, lease_s=self._lease)

    def _claim(self, conn: Connection, route: Route, worker: str, most: int) -> list[WorkerJob]:
        """Claim up to ``most`` ready jobs of the route's queue for this worker, in the
        caller's transaction: what the worker is to run."""
        if most <= 0:
            return []
        rows = dispatch.claim_ready(
            conn,
            owner_of(route.executor, worker),
            self._clock(),
            self._lease,
            most,
            route,
            decay=self._settings.share_decay,
        )
        if not rows:
            return []
        with self._specs_lock:
            specs = self._specs.make(conn, rows)
        log.info("worker %s of queue %s leased %d jobs", worker, route.executor, len(specs))
        return [WorkerJob.of(s) for s in specs]

    def renew(self, queue: str, body: RenewIn) -> RenewOut:
        """Extend the worker's leases; say which attempts it lost and which to cancel."""
        self._route(queue, None)
        owner = owner_of(queue, body.worker)
        asked = [(a.job_id, a.attempt) for a in body.jobs]
        with self._db.begin() as conn:
            now = self._clock()
            renewed = workerleases.renew(conn, owner, asked, now, self._lease)
            wanted = dispatch.to_cancel(conn, owner)
            dispatch.mark_cancelled(conn, [jid for jid, _, _ in wanted], now)
            if wanted:
                announce(conn, self._settings.bus, [ENDED], now)
        cancelled = {(jid, att) for jid, att, _ in wanted}
        lost = [p for p in asked if p not in renewed and p not in cancelled]
        return RenewOut(
            lost=[Attempt(job_id=j, attempt=a) for j, a in lost],
            cancel=[Attempt(job_id=j, attempt=a) for j, a in sorted(cancelled)],
            lease_s=self._lease,
        )

    def report(
        self,
        queue: str,
        body: ReportIn,
        later: Callable[[Callable[[], None]], None] | None = None,
        *,
        wait: bool = True,
    ) -> ReportOut:
        """Record what the worker saw, if its leases still hold every attempt named;
        otherwise :class:`LeaseLost` and nothing recorded.

        As the carrier records its executor's ends, the children of the jobs that
        succeeded are released in the same transaction, and up to ``body.want`` ready jobs
        are leased to the worker in it too: a chain's next job goes back in the answer to
        the report of its parent's end, with no agent or second call in between.

        The log tails are written once the transaction committed (the paths are
        recorded in it): by ``later`` if given (the API: after the answer is sent), else
        before returning. ``wait=False``: as ``Database.begin``'s (:class:`~orchid.store.db.WriteLockBusy`
        if the write lock is another's), and :class:`NotQuick` for a large fan-out."""
        route = self._route(queue, None)
        owner = owner_of(queue, body.worker)
        tails: list[tuple[bytes, bytes]] = []
        for i, u in enumerate(body.updates):
            try:
                tails.append(u.tails())
            except ValueError:
                raise InvalidInput(
                    "stdout and stderr are base64 text", field=f"updates.{i}"
                ) from None
        asked = [(u.job_id, u.attempt) for u in body.updates]
        log_dir = self._logs() if any(out or err for out, err in tails) else None
        with self._db.begin(wait=wait) as conn:
            now = self._clock()
            mine = workerleases.held(conn, owner, asked, now)
            refused = sorted({p for p in asked if p[0] not in mine})
            if refused:
                raise LeaseLost(
                    f"worker {body.worker} no longer holds {len(refused)} of these attempts "
                    "(their lease ran out and they were run again, or they were cancelled or "
                    "ended): nothing of this report was recorded; drop them and report the "
                    "rest",
                    refused,
                )
            if not wait:
                ends = [u.job_id for u in body.updates if u.state == "succeeded"]
                if release.children_over(conn, ends, QUICK_CHILDREN):
                    raise NotQuick(f"the ends of this report release over {QUICK_CHILDREN} jobs")
            updates: list[JobUpdate] = []
            policies = {}
            logs: list[tuple[AttemptFiles, bytes, bytes]] = []
            for u, (out, err) in zip(body.updates, tails, strict=True):
                held = mine[u.job_id]
                uri = None
                if log_dir is not None and u.state != "running" and (out or err):  # (empty: none)
                    files = AttemptFiles.at(log_dir, held.workflow_id, held.job_id, held.attempt)
                    logs.append((files, out, err))
                    uri = str(files.out)
                updates.append(capped(u.update(held.workflow_id, uri), self._limits))
                with self._specs_lock:
                    work = self._specs.work(conn, held.work_id, held.workflow_id)
                policies[u.job_id] = work.retry
            done = dispatch.record(
                conn,
                updates,
                policies,
                now,
                pass_on=True,
                clock=self._clock,
                ended=self._settings.job_events,
                current={j: h.current() for j, h in mine.items()},  # (read just above)
            )
            finished = settle_works(conn, done.passed, now) if done.passed.jobs else []
            jobs = self._claim(conn, route, body.worker, body.want)
            leased = {j.job_id for j in jobs}
            others = [j for j in done.passed.unblocked if j not in leased]
            elsewhere = dispatch.ready_elsewhere(conn, others, route)
            topics = _topics(done, finished, elsewhere)
            if topics:
                announce(conn, self._settings.bus, topics, now)
        if logs:
            if later is None:
                write_all(logs)
            else:
                later(lambda: write_all(logs))
        if done.passed.deferred:
            log.warning(
                "%d jobs recorded, not passed on: another session holds their workflow's "
                "works past lock_timeout; the trigger passes them on later",
                len(done.passed.deferred),
            )
        return ReportOut(recorded=len(updates), jobs=jobs, lease_s=self._lease if jobs else None)

    def release(self, queue: str, body: ReleaseIn) -> ReleaseOut:
        """The worker stops: its jobs in flight are ready again (their attempts cost no retry)."""
        self._route(queue, None)
        owner = owner_of(queue, body.worker)
        with self._db.begin() as conn:
            now = self._clock()
            n = dispatch.give_back(conn, owner, now, keep_attempt=False)
            if n:
                announce(conn, self._settings.bus, [JOBS], now)
        if n:
            log.info("worker %s of queue %s gave back %d jobs", body.worker, queue, n)
        return ReleaseOut(released=n)

    def _logs(self) -> Path:
        if self._log_dir is None:
            self._log_dir = log_folder(self._settings, self._db, self._clock())
        return self._log_dir


def _topics(done: dispatch.Recorded, finished: list[int], elsewhere: bool) -> list[str]:
    """What a report's transaction leaves for the agents, as the carrier's collect does;
    but jobs of the worker's own queue wake no agent (``elsewhere``: some released
    children are another executor's): the queue's workers lease them, and on SQLite every
    agent woken for nothing is a write transaction in the workers' way."""
    p = done.passed
    topics = []
    if elsewhere:
        topics.append(JOBS)
    if p.skipped or done.finished > p.jobs or p.deferred:  # ends the trigger passes on
        topics.append(ENDED)
    if finished:
        topics.append(WORKFLOWS)
    if p.woke_studies:
        topics.append(STUDIES)
    return topics


def write_all(logs: list[tuple[AttemptFiles, bytes, bytes]]) -> None:
    """Write reported log tails (a failure is logged: the job's end is recorded anyway,
    and ``orchid logs`` says its logs are missing)."""
    for files, out, err in logs:
        write_logs(files, out, err)


def write_logs(files: AttemptFiles, out: bytes, err: bytes) -> str | None:
    """Write an attempt's log tails where the agents' executors write theirs, so that
    ``orchid logs`` and the API serve them; the ``log_uri`` (None: they could not be, or
    both are empty: a file costs more than a short job, and says nothing)."""
    if not out and not err:
        return None
    try:
        files.out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        files.clear_logs()
        files.out.write_bytes(out)
        files.err.write_bytes(err)
    except OSError as exc:
        log.warning("%s: cannot write the logs: %s", files.out.parent, exc)
        return None
    return str(files.out)
