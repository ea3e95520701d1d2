"""One Orchid worker: lease a queue's jobs, run them with the local executor, renew the
leases while they run, report their ends in batches.

The jobs run exactly as the agents' local executor runs them (it *is* the local
executor: the same job environment and its allow-list, the wrapper, the result file, the
logs, ``run_as``); what the worker adds is the traffic with the server, through a
:class:`Lessor` (HTTP in production, ``orchid.worker.http``). A job whose lease the server
says is lost (it ran out, the job was cancelled) is stopped and its end never reported;
a report the server refuses for such attempts (HTTP 409) is sent again without them.
Stopping (SIGTERM, or :meth:`Worker.stop`) leases no more, stops the running jobs and
gives them back at once, so they run again elsewhere at no cost of a retry; with
``idle_exit_s`` the worker ends by itself once it has had nothing to do that long (a pilot
in a batch allocation). See docs/architecture.md, "Orchid workers".
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchid import jobvars
from orchid.client.errors import Rejected
from orchid.errors import LeaseLost, OrchidError
from orchid.executors._process import AttemptFiles
from orchid.executors.base import Executor, JobSpec, JobUpdate
from orchid.executors.workerwire import (
    LOG_TAIL_BYTES,
    MAX_BATCH,
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
    WorkerUpdate,
)

log = logging.getLogger(__name__)

Key = tuple[int, int]  # (job id, attempt)


class Lessor(Protocol):
    """The server, as a worker sees it. ``report`` raises :class:`LeaseLost` (naming the
    attempts) when the worker no longer holds some of them; nothing is then recorded."""

    def lease(self, body: LeaseIn) -> LeaseOut: ...

    def renew(self, body: RenewIn) -> RenewOut: ...

    def report(self, body: ReportIn) -> ReportOut: ...

    def release(self, body: ReleaseIn) -> ReleaseOut: ...


@dataclass(frozen=True)
class WorkerOptions:
    """How one worker behaves."""

    name: str  # its leases are held in this name (letters, digits, `._-`, at most 40)
    queue: str | None = None  # checked against the token's queue when given
    idle_exit_s: float | None = None  # end after this long with nothing to do (None: never)
    poll_s: float = 2.0  # how often to ask for jobs while there is room and none came
    # right after activity (an end reported, jobs leased) the next jobs are likely near (a
    # reported end releases its children): ask again after eager_s, eager_rounds times,
    # then doubling the pause up to poll_s
    eager_s: float = 0.02
    eager_rounds: int = 5
    report_batch: int = 200  # the most updates one report carries
    # a start is reported once it is this old, or with the next end, whichever comes
    # first; a job that ends meanwhile is reported once, by its end carrying its start
    # (as the local executor reports to the agents), so a short job costs one write
    running_hold_s: float = 0.05
    summary_s: float = 10.0  # a line of what it did this often, while it does something
    url: str = ""  # the server; jobs with a job token get it as ORCHID_URL


def default_name() -> str:
    """A name for this worker process: the host, the pid and a random part."""
    host = "".join(c if c.isalnum() or c in "._-" else "-" for c in os.uname().nodename)
    return f"{host[:20]}-{os.getpid()}-{os.urandom(3).hex()}"


class Worker:
    """Runs leased jobs on ``executor`` (a local executor, whose ``wake`` is :meth:`wake`,
    or sets ``woken``), which writes into ``log_dir``; see the module docstring. ``run``
    until stopped or idle; ``step`` does one round (tests)."""

    def __init__(
        self,
        lessor: Lessor,
        executor: Executor,
        log_dir: Path,
        options: WorkerOptions,
        clock: Callable[[], float] = time.monotonic,
        woken: threading.Event | None = None,
    ) -> None:
        self.lessor = lessor
        self.executor = executor
        self.log_dir = log_dir
        self.options = options
        self._clock = clock
        self._held: dict[Key, JobSpec] = {}  # leased and not reported ended
        self._dropped: set[Key] = set()  # lost or cancelled: their ends are not reported
        self._outbox: list[WorkerUpdate] = []
        self._held_since: float | None = None  # the oldest unsent start in the outbox
        self._untidy: list[JobUpdate] = []  # ended: their files go once the end is sent
        # ...by a thread of their own: thousands of unlinks a second stall nobody
        self._tidier = ThreadPoolExecutor(1, thread_name_prefix="orchid-worker-tidy")
        self._next_lease = 0.0  # no lease call before (a report asks for jobs too)
        self._woken = woken or threading.Event()  # set by the executor's wake (see wake)
        self._stopping = threading.Event()
        self._lease_s = 30.0
        self._next_renewal = 0.0
        self._idle_since = clock()
        self._quiet = 0  # rounds in a row that found nothing to do
        self.ended = 0  # ends reported (and recorded)
        self.failed = 0  # of which failed (or cancelled)
        self._summary = (clock(), 0, 0)  # when the last summary was logged, ended, failed

    @property
    def held(self) -> int:
        """Attempts leased here and not reported ended."""
        return len(self._held)

    def wake(self) -> None:
        """The executor has updates (called from its threads)."""
        self._woken.set()

    def stop(self) -> None:
        """Lease no more; :meth:`run` gives back what runs and returns (signal-safe)."""
        self._stopping.set()
        self._woken.set()

    def run(self) -> None:
        """Lease, run and report until stopped or idle long enough; then give back."""
        log.info("worker %s: serving queue %s", self.options.name, self.options.queue or "")
        try:
            while not self._stopping.is_set():
                busy = self.step()
                if self._idle_too_long():
                    log.info(
                        "worker %s: idle for %gs; exiting",
                        self.options.name,
                        self.options.idle_exit_s,
                    )
                    break
                if not busy:
                    self._woken.wait(self._pause())
                    self._woken.clear()
        finally:
            self._finish()

    def step(self) -> bool:
        """One round: collect and report ends, renew leases when due, lease more jobs.
        True if anything happened (then the next round comes at once)."""
        collected = self._collect()
        reported, leased, asked = self._report()
        self._tidy_ended()  # (after the report: not on a chain's critical path)
        self._renew()
        if not asked and self._clock() >= self._next_lease:
            leased += self._lease()
        now = self._clock()
        if self._held or self._outbox or leased:
            self._idle_since = now
        self._summarize(now)
        self._quiet = 0 if collected or reported or leased else self._quiet + 1
        return bool(collected or leased)

    def _summarize(self, now: float) -> None:
        """Every ``summary_s`` with jobs ended meanwhile: one line of what this worker did."""
        since, ended, failed = self._summary
        if now - since < self.options.summary_s or self.ended == ended:
            return
        self._summary = (now, self.ended, self.failed)
        log.info(
            "worker %s: %d jobs ended in the last %.0fs (%d failed), %d running or queued here",
            self.options.name,
            self.ended - ended,
            now - since,
            self.failed - failed,
            len(self._held),
        )

    def _pause(self) -> float:
        """How long to wait before the next round (an executor's update cuts it short):
        short right after activity, then doubling up to ``poll_s``, so a worker that just
        reported ends leases their children soon, and an idle one asks every ``poll_s``."""
        longest = min(self.options.poll_s, self._lease_s / 3)
        doublings = min(max(0, self._quiet - self.options.eager_rounds), 30)
        pause = min(longest, self.options.eager_s * float(2**doublings))
        if self._held_since is not None:  # a start waits to be reported
            due = self._held_since + self.options.running_hold_s - self._clock()
            pause = min(pause, max(0.0, due))
        return pause

    # --- leasing and renewing -----------------------------------------------------------

    def _lease(self) -> int:
        room = self._room()
        if room <= 0:
            return 0
        try:
            answer = self.lessor.lease(
                LeaseIn(worker=self.options.name, max=room, queue=self.options.queue)
            )
            self._asked(room, len(answer.jobs))
        except Rejected:  # a bad token or request: no use trying again
            raise
        except OrchidError as exc:
            log.warning("worker %s: cannot lease jobs: %s", self.options.name, exc)
            return 0
        return self._take(answer.jobs, answer.lease_s)

    def _asked(self, want: int, got: int) -> None:
        """After asking the server for jobs: ask again at once only if it gave all that
        was asked (more may be ready); else not before ``eager_s`` (the next end reported
        asks anyway), so a busy worker does not send a lease call between each end."""
        if want > 0:
            self._next_lease = self._clock() + (0.0 if got >= want else self.options.eager_s)

    def _room(self) -> int:
        """How many jobs to ask for now."""
        if self._stopping.is_set():
            return 0
        return max(0, min(self.executor.capacity(), MAX_BATCH))

    def _take(self, jobs: list[WorkerJob], lease_s: float | None) -> int:
        """Run jobs the server leased to this worker (by a lease or a report)."""
        if lease_s is not None:
            self._lease_s = lease_s
        if not jobs:
            return 0
        if not self._held:
            self._next_renewal = self._clock() + self._lease_s / 3
        specs = [self._job_spec(j.spec()) for j in jobs]
        for s in specs:
            self._held[s.job_id, s.attempt] = s
        self.executor.submit(specs)
        log.debug(
            "worker %s: leased %d jobs (%d held)", self.options.name, len(specs), len(self._held)
        )
        return len(specs)

    def _job_spec(self, spec: JobSpec) -> JobSpec:
        """A job with a job token reaches this worker's server (unless its payload says)."""
        if jobvars.TOKEN in spec.env and self.options.url and jobvars.URL not in spec.payload.env:
            spec.env = {**spec.env, jobvars.URL: self.options.url}
        return spec

    def _renew(self) -> None:
        if not self._held or self._clock() < self._next_renewal:
            return
        asked = [Attempt(job_id=j, attempt=a) for j, a in self._held]
        try:
            answer = self.lessor.renew(RenewIn(worker=self.options.name, jobs=asked))
        except Rejected:
            raise
        except OrchidError as exc:  # tried again soon; the lease may run out meanwhile
            log.warning("worker %s: cannot renew its leases: %s", self.options.name, exc)
            self._next_renewal = self._clock() + min(self.options.poll_s, self._lease_s / 6)
            return
        self._lease_s = answer.lease_s
        self._next_renewal = self._clock() + answer.lease_s / 3
        if answer.lost:
            log.warning(
                "worker %s: %d leases ran out (the server runs those jobs again); stopping them",
                self.options.name,
                len(answer.lost),
            )
        if answer.cancel:
            log.info("worker %s: %d jobs cancelled", self.options.name, len(answer.cancel))
        self._drop([(a.job_id, a.attempt) for a in [*answer.lost, *answer.cancel]])

    def _drop(self, keys: list[Key]) -> None:
        """Stop these attempts and never report them: they are no longer this worker's."""
        stop, gone = [], set(keys)
        for key in gone:
            spec = self._held.pop(key, None)
            if spec is not None:
                self._dropped.add(key)
                stop.append(spec.key)
        self._outbox = [u for u in self._outbox if (u.job_id, u.attempt) not in gone]
        if stop:
            self.executor.cancel(stop)

    # --- collecting and reporting -------------------------------------------------------

    def _collect(self) -> int:
        updates = self.executor.poll()
        for u in updates:
            key = (u.job_id, u.attempt)
            final = u.state != "running"
            if key in self._dropped:
                if final:
                    self._dropped.discard(key)
                    self._tidy(u)
                continue
            if key not in self._held:
                continue
            if final:
                out, err = self._tails(u)
                end = WorkerUpdate.of(u, out, err)
                start = self._unsent_start(key)
                if start is not None and end.started_at is None:
                    end = end.model_copy(update={"started_at": start})
                self._outbox.append(end)
                self._untidy.append(u)
            else:
                self._outbox.append(WorkerUpdate.of(u))
                if self._held_since is None:
                    self._held_since = self._clock()
        return len(updates)

    def _unsent_start(self, key: Key) -> float | None:
        """Take this attempt's start out of the outbox if it is still there (its end is
        reported instead, carrying it); when it started."""
        for i, u in enumerate(self._outbox):
            if u.state == "running" and (u.job_id, u.attempt) == key:
                del self._outbox[i]
                return u.at
        return None

    def _due(self) -> bool:
        """Whether to report now: an end waits, or a start has waited long enough."""
        if any(u.state != "running" for u in self._outbox):
            return True
        since = self._held_since
        if since is None:
            return bool(self._outbox)
        return self._stopping.is_set() or self._clock() - since >= self.options.running_hold_s

    def _report(self) -> tuple[int, int, bool]:
        """Send what ended (and started), asking for as many jobs as there is room for;
        how many ends were recorded, how many jobs came back, and whether it asked."""
        ended, leased, asked = self.ended, 0, False
        if not self._outbox or not self._due():
            return 0, 0, False
        self._held_since = None
        while self._outbox:
            batch = self._outbox[: self.options.report_batch]
            want = self._room()
            asked = asked or want > 0
            try:
                answer = self.lessor.report(
                    ReportIn(worker=self.options.name, updates=batch, want=want)
                )
                self._asked(want, len(answer.jobs))
            except LeaseLost as exc:
                if not exc.attempts:  # (the server names them; else sent again next round)
                    return self.ended - ended, leased, asked
                log.warning(
                    "worker %s: %d attempts are no longer this worker's; their reports dropped",
                    self.options.name,
                    len(exc.attempts),
                )
                self._drop(list(exc.attempts))
                continue
            except Rejected:
                raise
            except OrchidError as exc:  # kept, and sent again next round
                log.warning("worker %s: cannot report: %s", self.options.name, exc)
                return self.ended - ended, leased, asked
            del self._outbox[: len(batch)]
            for u in batch:
                key = (u.job_id, u.attempt)
                if u.state != "running" and key in self._held:
                    del self._held[key]
                    self.ended += 1
                    failed = u.state != "succeeded"
                    self.failed += failed
                    # one line a job is too slow for thousands of short jobs a second
                    # (a summary comes every summary_s); failures are worth one each
                    log.log(
                        logging.INFO if failed else logging.DEBUG,
                        "worker %s: job %s attempt %s %s%s",
                        self.options.name,
                        u.job_id,
                        u.attempt,
                        u.state,
                        f": {u.error}" if u.error else "",
                    )
            leased += self._take(answer.jobs, answer.lease_s)
        return self.ended - ended, leased, asked

    def _tails(self, u: JobUpdate) -> tuple[bytes, bytes]:
        spec = self._held[u.job_id, u.attempt]
        files = AttemptFiles.for_job(self.log_dir, spec)
        return _tail(files.out), _tail(files.err)

    def _tidy_ended(self) -> None:
        untidy, self._untidy = self._untidy, []
        if untidy:
            self._tidier.submit(self._tidy_all, untidy)

    def _tidy_all(self, ended: list[JobUpdate]) -> None:
        for u in ended:
            self._tidy(u)

    def _tidy(self, u: JobUpdate) -> None:
        """Remove an ended attempt's files here: the server keeps its logs."""
        files = AttemptFiles.at(self.log_dir, _workflow_of(u.key), u.job_id, u.attempt)
        for path in (files.out, files.err, files.result, files.args, files.progress):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)

    # --- stopping -----------------------------------------------------------------------

    def _idle_too_long(self) -> bool:
        limit = self.options.idle_exit_s
        return limit is not None and self._clock() - self._idle_since >= limit

    def _finish(self) -> None:
        """Report what ended, stop the rest and give it back."""
        try:
            self._collect()
            self._report()
            self._tidy_ended()
            self._tidier.shutdown(wait=True)
        except OrchidError as exc:  # (a revoked token): the jobs are still stopped below
            log.warning("worker %s: cannot report its last ends: %s", self.options.name, exc)
        finally:
            held = list(self._held)
            self._dropped.update(held)
            self.executor.close()
            self.executor.poll()  # the stopped jobs' ends: never reported
        if not held:
            return
        try:
            n = self.lessor.release(ReleaseIn(worker=self.options.name)).released
        except OrchidError as exc:
            log.warning(
                "worker %s: cannot give back %d jobs (%s); they run again once their leases "
                "run out",
                self.options.name,
                len(held),
                exc,
            )
            return
        log.info("worker %s: gave back %d jobs", self.options.name, n)


def _workflow_of(key: str) -> int:
    return int(key.split("-", 1)[0])


def _tail(path: Path, limit: int = LOG_TAIL_BYTES) -> bytes:
    """The end of a log, at most ``limit`` bytes (with a line saying the start was cut)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size <= limit:
                f.seek(0)
                return f.read()
            note = b"[... the start of this log was cut ...]\n"
            f.seek(size - limit + len(note))
            return note + f.read()
    except OSError:
        return b""
