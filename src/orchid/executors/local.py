"""Run jobs as processes on this host, at most ``workers`` at a time (POSIX only).

A fixed pool of ``workers`` threads takes jobs from an internal queue; each thread runs one
child process at a time and waits for it, so :meth:`LocalExecutor.submit` never blocks and
jobs beyond the pool simply queue. Every job runs in its own session (process group), so a
cancel or walltime kill reaches everything the job started.

Payloads:

- ``command``: the argv, each item with ``{arg}`` placeholders rendered (see
  :func:`~orchid.executors._process.render_item`), run without a shell (say ``sh -c`` in
  the argv for one).
- ``function``: ``python -m orchid.executors.wrapper`` in a child process, which imports and
  calls the function there, so user code can never crash the agent. With
  ``reuse_workers``, each slot keeps one such process alive instead and runs one job after
  another in it (:mod:`orchid.executors.pool`): the same results, exit codes and logs,
  without an interpreter start per job (a module's state then lives from job to job of
  one workflow: a worker serves one workflow's jobs). This is the default.
- ``noop``: succeeds at once, without a process.

Each attempt writes ``<log_dir>/<workflow_id>/<job_id>.<attempt>.out`` (stdout, the
``log_uri`` of its updates) and ``.err`` (stderr) next to it. The job's environment has
``ORCHID_JOB_KEY``, ``ORCHID_WORKFLOW_ID``, ``ORCHID_JOB_ID``, ``ORCHID_JOB_NAME``,
``ORCHID_ATTEMPT``, ``ORCHID_WORK``, ``ORCHID_ARGS`` (JSON; and the file ``ORCHID_ARGS_FILE``),
``ORCHID_PROGRESS_FILE`` (intermediate values, see orchid.hpo.trial) and ``ORCHID_RESULT_FILE``; the
result is the JSON in that file if the job wrote it, else the last stdout line if it is
JSON, else None. Of the agent's own environment a job gets only an allow-list (PATH, HOME,
LANG, LC_*, TZ, TMPDIR, USER, LOGNAME, and what ``env_passthrough`` names: see
:func:`~orchid.executors._process.base_env`), never its database URL or secrets; with
``run_as`` it runs as another OS user (:mod:`orchid.executors.runas`).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from orchid.core.limits import DEFAULT as DEFAULT_LIMITS
from orchid.core.limits import Limits
from orchid.errors import ConfigError, ExecutorError
from orchid.executors import _process as proc
from orchid.executors import runas
from orchid.executors._attempt import Attempt
from orchid.executors.base import (
    BuildContext,
    ExecutorOptions,
    JobSpec,
    JobUpdate,
    UpdateState,
    Usage,
    WakeUp,
)
from orchid.executors.jobcommand import job_command
from orchid.executors.pool import RECALL_S, PoolWorker, WorkerPool
from orchid.executors.runas import OsUser, RunAs

logger = logging.getLogger(__name__)

# Where `orchid` itself is importable from, so the wrapper starts even if orchid is not installed.
_ORCHID_ROOT = str(Path(__file__).resolve().parents[2])
# jobs are taken ahead of free slots (``prefetch``) only while they are quick: a typical
# job of the last few under this many seconds. Long jobs taken ahead would wait behind
# this agent's slots while another agent's slots stand free.
PREFETCH_QUICK_S = 1.0
_RECENT_WEIGHT = 0.2  # of the newest job in the running mean of job durations


class LocalOptions(ExecutorOptions):
    workers: int | None = Field(None, ge=1, description="process slots (default: ORCHID_WORKERS)")
    run_as: str | dict[str, str] | None = Field(
        None,
        description="the OS user jobs run as: one name, or a table of Orchid user (or "
        "group:NAME, or *) = OS user (default: the top-level run_as; none: the agent's own)",
    )
    env_passthrough: list[str] | None = Field(
        None,
        description="more of the agent's variables jobs get: NAME or PREFIX* (default: the "
        "top-level env_passthrough)",
    )
    prefetch: int | None = Field(
        None, ge=0, description="jobs taken ahead of free slots (default: ORCHID_PREFETCH)"
    )
    reuse_workers: bool | None = Field(
        None, description="function jobs in long-lived workers (default: ORCHID_REUSE_WORKERS)"
    )


class LocalExecutor:
    """Runs jobs as child processes of this agent; see the module docstring.

    ``wake`` is called (from worker threads) after each update is queued; ``clock`` stamps
    updates. ``kill_grace_s`` is how long a cancelled or timed-out job has between SIGTERM
    and SIGKILL. ``prefetch`` jobs beyond the free slots are taken ahead while jobs are
    quick (a running mean of their durations under ``PREFETCH_QUICK_S``), so a slot that
    frees starts the next job at once (they start even if their workflow is suspended
    meanwhile). ``reuse_workers``: see the module docstring.
    """

    name = "local"
    durable = False
    options_model: ClassVar[type[ExecutorOptions]] = LocalOptions

    @classmethod
    def from_config(cls, options: LocalOptions, context: BuildContext) -> LocalExecutor:
        """A local executor as its section says, the settings' defaults for the rest."""
        passthrough = options.env_passthrough
        if passthrough is None:
            passthrough = [n.strip() for n in context.env_passthrough.split(",") if n.strip()]
        run_as = options.run_as if options.run_as is not None else (context.run_as or None)
        executor = cls(
            workers=options.workers or context.workers,
            log_dir=context.log_dir,
            wake=context.wake,
            prefetch=context.prefetch if options.prefetch is None else options.prefetch,
            reuse_workers=(
                context.reuse_workers if options.reuse_workers is None else options.reuse_workers
            ),
            limits=context.limits,
            run_as=RunAs.parse(run_as, context.where),
            env_passthrough=passthrough,
            home=context.home,
        )
        executor.name = context.name
        return executor

    def __init__(
        self,
        workers: int,
        log_dir: Path,
        wake: WakeUp | None = None,
        clock: Callable[[], float] = time.time,
        *,
        kill_grace_s: float = 5.0,
        prefetch: int = 0,
        reuse_workers: bool = False,
        limits: Limits = DEFAULT_LIMITS,
        run_as: RunAs | None = None,
        env_passthrough: Sequence[str] = (),
        home: Path | None = None,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"the local executor needs at least 1 worker, not {workers}")
        if prefetch < 0:
            raise ConfigError(f"prefetch cannot be negative; got {prefetch}")
        self._workers = workers
        self._prefetch = prefetch
        self._limits = limits  # result_max_bytes: a bigger result fails its job
        self._log_dir = Path(log_dir)
        self._run_as = run_as
        self._passthrough = tuple(env_passthrough)
        if run_as is not None:
            run_as.check(f"executor {self.name}")
            try:
                runas.traversable(self._log_dir, home or self._log_dir.parent)
            except OSError as exc:
                raise ConfigError(f"cannot prepare the log folder {log_dir}: {exc}") from None
        self._wake = wake
        self._clock = clock
        self._kill_grace_s = kill_grace_s
        self._lock = threading.Lock()
        self._pool = (
            WorkerPool(workers, self._log_dir, limits, self, self._lock) if reuse_workers else None
        )
        self._work_ready = threading.Condition(self._lock)
        self._pending: deque[JobSpec] = deque()  # may hold cancelled specs; _queued decides
        self._queued: dict[str, JobSpec] = {}
        self._running: dict[str, Attempt] = {}
        self._updates: list[JobUpdate] = []
        self._closed = False
        self._idle = 0  # slot threads waiting for a job
        self._typical_s: float | None = None  # running mean of job durations; None: none yet
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"orchid-local-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # --- the Executor protocol ---------------------------------------------------------

    def capacity(self) -> int:
        """Free workers plus ``prefetch`` while jobs are quick, minus queued and running
        jobs, never negative.

        Otherwise (no prefetch, no job ended yet, or long jobs) never more than the free
        workers: a job handed over here starts even if its workflow is suspended a moment
        later, and a long job taken ahead would wait here while other agents stand idle.
        """
        with self._lock:
            quick = self._typical_s is not None and self._typical_s < PREFETCH_QUICK_S
            room = self._workers + (self._prefetch if quick else 0)
            return max(0, room - len(self._queued) - len(self._running))

    def submit(self, jobs: Sequence[JobSpec]) -> None:
        """Queue these attempts; ``noop`` ones succeed here. A key already held is ignored."""
        noops = 0
        with self._lock:
            if self._closed:
                raise ExecutorError("the local executor is closed")
            for spec in jobs:
                if spec.key in self._queued or spec.key in self._running:
                    logger.warning("job %s: already queued or running; ignored", spec.key)
                elif spec.payload.kind == "noop":
                    self._updates.append(self._update(spec, "succeeded", exit_code=0))
                    noops += 1
                else:
                    self._queued[spec.key] = spec
                    self._pending.append(spec)
                    self._work_ready.notify()
        if noops:
            self._notify()

    def poll(self) -> list[JobUpdate]:
        """Updates since the last call, oldest first; never blocks on jobs.

        A job that started and ended since the last call is reported once, by its final
        update carrying its start time.
        """
        with self._lock:
            updates, self._updates = self._updates, []
        if len(updates) < 2:
            return updates
        ended = {u.key for u in updates if u.state != "running"}
        began = {u.key: u.at for u in updates if u.state == "running" and u.key in ended}
        if not began:
            return updates
        return [
            replace(u, started_at=began[u.key]) if u.key in began else u
            for u in updates
            if not (u.state == "running" and u.key in began)
        ]

    def cancel(self, keys: Sequence[str]) -> None:
        """Drop queued attempts silently; SIGTERM running ones (SIGKILL after the grace).

        A cancelled running attempt reports ``failed`` with error ``"cancelled"``.
        """
        to_stop: list[Attempt] = []
        with self._lock:
            for key in keys:
                if self._queued.pop(key, None) is not None:
                    logger.debug("job %s: cancelled while queued", key)
                    continue
                attempt = self._running.get(key)
                if attempt is not None and not attempt.cancelled:
                    attempt.cancelled = True
                    to_stop.append(attempt)
        for attempt in to_stop:
            logger.info("job %s: cancelling", attempt.spec.key)
            self._terminate(attempt)

    def close(self) -> None:
        """Cancel everything, stop the workers and wait for them briefly. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._pending.clear()
            self._queued.clear()
            running = list(self._running.values())
            for attempt in running:
                attempt.cancelled = True
            self._work_ready.notify_all()
        for attempt in running:
            self._terminate(attempt)
        deadline = time.monotonic() + self._kill_grace_s + 1.0
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        alive = sum(thread.is_alive() for thread in self._threads)
        if alive:
            logger.warning("local executor closed with %d worker(s) still busy", alive)
        if self._pool is not None:
            self._pool.close()

    # --- worker threads ----------------------------------------------------------------

    def _work(self, slot: int) -> None:
        """One worker: take the oldest queued job, run it to the end, repeat until closed."""
        while True:
            with self._work_ready:
                self._idle += 1
                recalls, waiting = self._recalls()
                while not self._pending and not self._closed and not recalls:
                    # free while jobs wait in a busy worker's pipe: ask for them back once
                    # the job ahead of them has run long (they then queue here again)
                    self._work_ready.wait(RECALL_S if waiting else None)
                    recalls, waiting = self._recalls()
                self._idle -= 1
                if self._closed:
                    return
                attempt = self._take_locked(None)
            for worker, keys in recalls:
                worker.recall(keys)
            if attempt is None:
                continue  # what was queued had been cancelled (or recalls were sent)
            try:
                if self._pool is not None and self._pool.accepts(attempt.spec):
                    self._pool.run(attempt, slot)
                else:
                    self._run(attempt)
            except Exception as exc:  # a bug here must not kill the worker or lose the job
                logger.exception("job %s: executor error", attempt.spec.key)
                self.finish(attempt, "failed", error=f"executor error: {exc}")

    def _recalls(self) -> tuple[list[tuple[PoolWorker, list[str]]], bool]:
        """See :meth:`WorkerPool.recalls` (the lock held)."""
        return self._pool.recalls() if self._pool is not None else ([], False)

    # --- for the worker pool (orchid.executors.pool.Slots) -----------------------------

    def take(self, wanted: Callable[[JobSpec], bool]) -> Attempt | None:
        """The oldest queued job, now running, if it is ``wanted`` and no slot is free to
        start it at once; else None."""
        with self._lock:
            return None if self._idle else self._take_locked(wanted)

    def _take_locked(self, wanted: Callable[[JobSpec], bool] | None) -> Attempt | None:
        while self._pending and not self._closed:
            spec = self._pending[0]
            if self._queued.get(spec.key) is not spec:
                self._pending.popleft()  # cancelled while queued
                continue
            if wanted is not None and not wanted(spec):
                return None
            self._pending.popleft()
            del self._queued[spec.key]
            attempt = self._running[spec.key] = Attempt(spec)
            return attempt
        return None

    def withdrawn(self, attempt: Attempt) -> bool:
        """True (and the attempt forgotten) if it was cancelled before it started."""
        with self._lock:
            if not attempt.cancelled:
                return False
            del self._running[attempt.spec.key]
            return True

    def began(
        self, attempt: Attempt, process: subprocess.Popen[bytes], log_uri: str, *, wake: bool
    ) -> None:
        """The attempt's process started: report it (``wake``: tell the agent now), signal
        it if it was cancelled meanwhile, and start its walltime."""
        with self._lock:
            attempt.process = process
            if attempt.started is None:  # (a pool worker's job: when the worker began it)
                attempt.started = time.monotonic()
            cancelled = attempt.cancelled
        self._push(self._update(attempt.spec, "running", log_uri=log_uri), wake=wake)
        if cancelled:
            self._terminate(attempt)
        walltime = attempt.spec.resources.walltime_s
        if walltime is not None:
            self._start_timer(attempt, walltime, self._walltime_expired)

    def requeue(self, attempts: Sequence[Attempt]) -> None:
        """Put attempts that never started back at the front of the queue, in order."""
        with self._lock:
            for attempt in reversed(attempts):
                key = attempt.spec.key
                if self._running.pop(key, None) is None or attempt.cancelled or self._closed:
                    continue
                self._queued[key] = attempt.spec
                self._pending.appendleft(attempt.spec)
                self._work_ready.notify()

    def _run(self, attempt: Attempt) -> None:
        """Start the attempt's process, wait for it, and report how it ended."""
        spec = attempt.spec
        files = proc.AttemptFiles.for_job(self._log_dir, spec)
        log_uri = str(files.out)
        try:
            user = self.user(spec)
            argv, env = self._command(spec, files, user)
            files.prepare(spec.args, user)
            if self.withdrawn(attempt):  # cancelled before it started: as if still queued
                return
            cwd = spec.payload.workdir
            if cwd is None and user is not None:  # ours may be closed to it: its own folder
                cwd = str(files.out.parent)
            process = proc.spawn(argv, cwd, env, files, user)
        except proc.StartError as exc:
            logger.info("job %s: cannot start: %s", spec.key, exc)
            self.finish(attempt, "failed", error=str(exc), log_uri=log_uri)
            return
        started = time.monotonic()
        logger.debug("job %s: started pid %d: %s", spec.key, process.pid, argv)
        self.began(attempt, process, log_uri, wake=True)
        walltime = spec.resources.walltime_s

        status, usage = proc.wait(process.pid, started, lambda: self.exited(attempt))
        exit_code, error = proc.exit_reason(status, files.err)
        process.returncode = exit_code if exit_code is not None else -1  # Popen must not reap

        result: Any = None
        if attempt.cancelled:
            error = "cancelled"
        elif attempt.timed_out:
            error = f"walltime of {walltime:g}s exceeded"
        elif error is None:
            result, error = proc.read_result(files, self._limits)
        state: UpdateState = "failed" if error else "succeeded"
        log = logger.debug if state == "succeeded" else logger.info
        log("job %s: %s (exit code %s) %s", spec.key, state, exit_code, error or "")
        self.finish(
            attempt,
            state,
            exit_code=exit_code,
            result=result,
            error=error,
            usage=usage,
            log_uri=log_uri,
        )

    def _command(
        self, spec: JobSpec, files: proc.AttemptFiles, user: OsUser | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """The argv and environment for a ``command`` or ``function`` payload."""
        command = job_command(spec)
        # a function runs in the wrapper, which must find orchid even where it is not installed
        extra = [_ORCHID_ROOT] if spec.payload.kind == "function" else []
        env = proc.build_env(spec, files, extra, self.base_env(user))
        env.update(command.env)
        return command.argv, env

    def base_env(self, user: OsUser | None) -> dict[str, str]:
        """What jobs (of ``user``) inherit of our environment now: see :func:`proc.base_env`."""
        return proc.base_env(self._passthrough, user)

    def user(self, spec: JobSpec) -> OsUser | None:
        """The OS user the job runs as (None: as we do); StartError if run_as has none."""
        return proc.job_user(self._run_as, spec)

    # --- stopping processes ------------------------------------------------------------

    def exited(self, attempt: Attempt) -> None:
        """The process is gone: no more signals to its group, no more timers."""
        with self._lock:
            attempt.exited = True
            timers, attempt.timers = attempt.timers, []
        for timer in timers:
            timer.cancel()

    def _signal(self, attempt: Attempt, signum: int) -> None:
        """Signal the attempt's process group unless it has exited (its pgid may be reused)."""
        with self._lock:
            if attempt.process is None or attempt.exited:
                return
            logger.debug("job %s: sending %s", attempt.spec.key, proc.signal_name(signum))
            attempt.signalled = True
            proc.kill_group(attempt.process.pid, signum)

    def _terminate(self, attempt: Attempt) -> None:
        """SIGTERM now, SIGKILL after the grace period if it is still there."""
        self._signal(attempt, signal.SIGTERM)
        self._start_timer(attempt, self._kill_grace_s, self._kill)

    def _kill(self, attempt: Attempt) -> None:
        self._signal(attempt, signal.SIGKILL)

    def _walltime_expired(self, attempt: Attempt) -> None:
        with self._lock:
            if attempt.exited or attempt.cancelled:
                return
            attempt.timed_out = True
        logger.info("job %s: walltime exceeded; stopping it", attempt.spec.key)
        self._terminate(attempt)

    def _start_timer(
        self, attempt: Attempt, delay: float, action: Callable[[Attempt], None]
    ) -> None:
        """Run ``action(attempt)`` after ``delay`` seconds unless the process exits first."""
        with self._lock:
            if attempt.exited:
                return
            timer = threading.Timer(delay, action, args=(attempt,))
            timer.daemon = True
            attempt.timers.append(timer)
            timer.start()

    # --- updates -----------------------------------------------------------------------

    def _update(self, spec: JobSpec, state: UpdateState, **fields: Any) -> JobUpdate:
        if state == "succeeded" and fields.get("usage") is None:
            fields["usage"] = Usage()
        return JobUpdate(spec.key, spec.job_id, spec.attempt, state, self._clock(), **fields)

    def _push(self, update: JobUpdate, *, wake: bool = True) -> None:
        """Queue an update for :meth:`poll`; ``wake``: tell the agent now."""
        with self._lock:
            self._updates.append(update)
        if wake:
            self._notify()

    def finish(self, attempt: Attempt, state: UpdateState, **fields: Any) -> None:
        """Queue the final update and free the worker slot in one step."""
        update = self._update(attempt.spec, state, **fields)
        took = None if attempt.started is None else time.monotonic() - attempt.started
        with self._lock:
            self._running.pop(attempt.spec.key, None)
            self._updates.append(update)
            if took is not None:
                last = self._typical_s
                self._typical_s = took if last is None else last + _RECENT_WEIGHT * (took - last)
        self._notify()

    def _notify(self) -> None:
        if self._wake is None:
            return
        try:
            self._wake()
        except Exception:
            logger.exception("local executor: wake-up callback failed")
