"""The local executor's long-lived workers, one per slot: ``function`` jobs without a new
interpreter each time (see :mod:`orchid.executors.poolworker` for the worker's side).

A slot thread hands its worker one job, reads when it starts and how it ended, and
reports both; jobs reach the executor, and their results leave it, in batches. Signals
for a job (cancel, walltime) go to its worker's process group, as they would go to a
job's own process: the worker dies and the slot starts another for the next job.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from orchid.core import jsonvalues
from orchid.executors import _process as proc
from orchid.executors.base import JobSpec, JobUpdate, UpdateState, Usage

WORKER_MODULE = "orchid.executors.poolworker"
_ORCHID_ROOT = str(Path(__file__).resolve().parents[2])

Signature = tuple[tuple[str, ...], str | None]  # (python_path, workdir) a worker serves


class PoolWorker:
    """One worker process and its two pipes. Used by one thread at a time."""

    def __init__(self, signature: Signature) -> None:
        self.signature = signature
        python_path, workdir = signature
        env = dict(os.environ)
        current = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        path = [*python_path, *current]
        path += [p for p in (_ORCHID_ROOT,) if p not in path]
        env["PYTHONPATH"] = os.pathsep.join(path)
        jobs_r, jobs_w = os.pipe()
        replies_r, replies_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, str(jobs_r), str(replies_w)],
                pass_fds=(jobs_r, replies_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: signals reach what it starts
                cwd=workdir if workdir and os.path.isdir(workdir) else None,
                env=env,
            )
        finally:
            os.close(jobs_r)
            os.close(replies_w)
        self._jobs = os.fdopen(jobs_w, "wb")
        self._replies = os.fdopen(replies_r, "rb")

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, job: Mapping[str, Any]) -> bool:
        """Hand over a job; False if the worker is gone."""
        try:
            self._jobs.write(json.dumps(job, separators=(",", ":")).encode() + b"\n")
            self._jobs.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def read(self) -> dict[str, Any] | None:
        """The worker's next message; None when it has exited (or broke the protocol)."""
        line = self._replies.readline()
        if not line:
            return None
        try:
            message = json.loads(line)
        except ValueError:
            return None
        return message if isinstance(message, dict) else None

    def wait(self) -> int:
        """Reap the worker after it exited; its return code (-N: killed by signal N)."""
        return self.process.wait()

    def close(self) -> None:
        """Stop the worker (it was idle, or its job is being cancelled)."""
        for stream in (self._jobs, self._replies):
            with contextlib.suppress(OSError):
                stream.close()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


def job_message(
    key: str,
    function: str,
    args: Mapping[str, Any],
    env: Mapping[str, str],
    workdir: str | None,
    out: Path,
    err: Path,
) -> dict[str, Any]:
    return {
        "key": key,
        "function": function,
        "args": dict(args),
        "env": dict(env),
        "workdir": workdir,
        "out": str(out),
        "err": str(err),
    }


def signature_of(python_path: Sequence[str], workdir: str | None) -> Signature:
    return tuple(python_path), workdir


class _Host(Protocol):
    """What :class:`PooledSlots` uses of the executor it is mixed into."""

    _lock: threading.Lock
    _log_dir: Path
    _pool: list[PoolWorker | None]
    _running: dict[str, Any]

    def _push(self, update: JobUpdate) -> None: ...
    def _update(self, spec: JobSpec, state: UpdateState, **fields: Any) -> JobUpdate: ...
    def _finish(self, attempt: Any, state: UpdateState, **fields: Any) -> None: ...
    def _exited(self, attempt: Any) -> None: ...
    def _walltime_expired(self, attempt: Any) -> None: ...
    def _start_timer(self, attempt: Any, delay: float, action: Callable[[Any], None]) -> None: ...
    def _worker(self: _Host, slot: int, signature: Signature) -> PoolWorker: ...
    def _finish_pooled(
        self: _Host,
        attempt: Any,
        code: int,
        result_text: str | None,
        error: str | None,
        usage: Usage | None,
        log_uri: str,
        walltime: float | None,
    ) -> None: ...


class PooledSlots:
    """The local executor's part that runs ``function`` jobs in its slots' workers.

    A mixin of :class:`~orchid.executors.local.LocalExecutor`, whose attempt bookkeeping
    (lock, running jobs, timers, updates) it uses; kept here so each file stays readable.
    """

    def _run_pooled(self: _Host, attempt: Any, slot: int) -> None:
        """Run a function job in this slot's long-lived worker; report how it went."""
        spec = attempt.spec
        files = proc.AttemptFiles.for_job(self._log_dir, spec)
        log_uri = str(files.out)
        try:
            env = proc.job_variables(spec, files)
            files.prepare(spec.args)
        except proc.StartError as exc:
            self._finish(attempt, "failed", error=str(exc), log_uri=log_uri)
            return
        worker = self._worker(slot, signature_of(spec.payload.python_path, spec.payload.workdir))
        message = job_message(
            spec.key,
            spec.payload.function or "",
            spec.args,
            env,
            spec.payload.workdir,
            files.out,
            files.err,
        )
        with self._lock:
            if attempt.cancelled:  # cancelled before it started: as if still queued
                del self._running[spec.key]
                return
            attempt.process = worker.process
        walltime = spec.resources.walltime_s
        reply = worker.read() if worker.send(message) else None
        if reply is not None and reply.get("event") == "start":
            self._push(self._update(spec, "running", log_uri=log_uri))
            if walltime is not None:
                self._start_timer(attempt, walltime, self._walltime_expired)
            reply = worker.read()
        if reply is None or reply.get("event") != "done":  # the worker died with the job
            code = worker.wait()
            self._exited(attempt)
            worker.close()
            self._pool[slot] = None
            died = proc.exit_message(code, files.err) or "the worker process stopped"
            self._finish_pooled(attempt, code, None, died, None, log_uri, walltime)
            return
        self._exited(attempt)  # no signal meant for this job may reach the next one
        usage = Usage(
            wall_s=float(reply.get("wall", 0.0)),
            cpu_user_s=float(reply.get("user", 0.0)),
            cpu_system_s=float(reply.get("system", 0.0)),
            max_rss_kb=int(reply.get("rss", 0)),
        )
        code = int(reply.get("code", 1))
        failed = proc.exit_message(code, files.err)
        self._finish_pooled(attempt, code, reply.get("result"), failed, usage, log_uri, walltime)

    def _finish_pooled(
        self: _Host,
        attempt: Any,
        code: int,
        result_text: str | None,
        error: str | None,
        usage: Usage | None,
        log_uri: str,
        walltime: float | None,
    ) -> None:
        result: Any = None
        if attempt.cancelled:
            error = "cancelled"
        elif attempt.timed_out:
            error = f"walltime of {walltime:g}s exceeded"
        elif error is None and result_text is not None:
            try:
                result = jsonvalues.loads(result_text)
            except ValueError as exc:
                error = proc.truncate(f"the result is not valid JSON: {exc}")
        state: UpdateState = "failed" if error else "succeeded"
        self._finish(
            attempt, state, exit_code=code, result=result, error=error, usage=usage, log_uri=log_uri
        )

    def _worker(self: _Host, slot: int, signature: Signature) -> PoolWorker:
        """This slot's worker for jobs with this python_path and workdir (a new one if the
        last served others, or died)."""
        worker = self._pool[slot]
        if worker is not None and (worker.signature != signature or not worker.alive()):
            worker.close()
            worker = None
        if worker is None:
            worker = self._pool[slot] = PoolWorker(signature)
        return worker
