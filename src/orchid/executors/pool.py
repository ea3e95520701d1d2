"""The local executor's long-lived workers, one per slot: ``function`` jobs without a new
interpreter each time (see :mod:`orchid.executors.poolworker` for the worker's side).

A slot thread writes jobs to its worker's pipe, the next one while the last runs, reads
when each starts and how it ended, and reports both; jobs reach the executor, and their
results leave it, in batches. The worker makes each attempt's files (its logs, and its
arguments in a file of the worker's), so the agent's threads only hand jobs over and
read back. Signals for a job (cancel, walltime) go to its worker's process group, as
they would go to a job's own process: the worker dies and the slot starts another for
the next job.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from orchid.core import jsonvalues
from orchid.core.limits import DEFAULT as DEFAULT_LIMITS
from orchid.core.limits import Limits
from orchid.executors import _process as proc
from orchid.executors._attempt import Attempt
from orchid.executors.base import JobSpec, UpdateState, Usage
from orchid.executors.runas import OsUser, as_user, own_folder
from orchid.safefiles import private_folder

WORKER_MODULE = "orchid.executors.poolworker"
_ORCHID_ROOT = str(Path(__file__).resolve().parents[2])
logger = logging.getLogger(__name__)

# jobs written ahead to a worker's pipe: one while the last job took long, up to DEEP
# while they are quick (so the worker runs on while its slot thread waits for the GIL); a
# slow job then holds up at most DEEP - 1 quick ones, never one another slot could start
DEEP, QUICK_S = 16, 0.01
RECALL_S = 0.05  # a job running this long gives up the jobs waiting behind it to a free slot
AHEAD_BYTES = 32 * 1024  # written ahead at most: half a pipe's buffer, never a blocking write
SPARE = ".spare"  # the log folder's folder of the workers' spare files
# a reply's room besides its result (keys, usage, an error message); the result travels as
# a JSON string, where escaping may double it
REPLY_OVERHEAD = 64 * 1024
FOLDERS_KNOWN = 10_000  # run_as: job folders remembered as made (one per workflow)
# (python_path, workdir, uid of the run_as user or None, workflow id) a worker serves: one
# workflow's jobs only, so no module state, no monkeypatch and no code edited since passes
# from one workflow (or user) to the next; a workflow's 10,000 short jobs share it
Signature = tuple[tuple[str, ...], str | None, int | None, int]


class PoolWorker:
    """One worker process and its three pipes: jobs, replies (both used by its slot's
    thread) and recalls (used by a free slot's)."""

    def __init__(
        self,
        signature: Signature,
        log_dir: Path,
        base_env: Mapping[str, str],
        user: OsUser | None = None,
        max_reply: int = REPLY_OVERHEAD,
    ) -> None:
        """A worker with ``base_env`` (what jobs inherit of ours; never all of it), run as
        ``user`` (a run_as user: then its spare files are in a folder of its own). A reply
        longer than ``max_reply`` bytes (a result is checked against result_max_bytes in
        the worker, so only a job writing into the replies pipe itself sends one) stops it."""
        self.signature = signature
        self.max_reply = max_reply
        self.broke: str | None = None  # why it was stopped for breaking the protocol
        # its spare files, <log_dir>/.spare/<name>.<role> (orchid.executors.poolworker.Files)
        self.spare = log_dir / SPARE
        if user is None:
            private_folder(log_dir)  # the jobs' logs are the service's user's alone
        else:
            self.spare.mkdir(mode=0o711, exist_ok=True)
            self.spare = self.spare / user.name
            own_folder(self.spare, user)
        python_path, workdir, _, _ = signature
        env = dict(base_env)
        current = [p for p in proc.our_python_path().split(os.pathsep) if p]
        path = [*python_path, *current]
        path += [p for p in (_ORCHID_ROOT,) if p not in path]
        env["PYTHONPATH"] = os.pathsep.join(path)
        jobs_r, jobs_w = os.pipe()
        replies_r, replies_w = os.pipe()
        recalls_r, recalls_w = os.pipe()
        fds = (jobs_r, replies_w, recalls_r)
        # its spare files' name: unique among workers sharing the log folder, hosts too
        self.name = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        if workdir and os.path.isdir(workdir):
            cwd: str | None = workdir
        elif user is not None:  # ours may be closed to it
            cwd = user.home if os.path.isdir(user.home) else "/"
        else:
            cwd = None
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, *map(str, fds), self.name],
                pass_fds=fds,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: signals reach what it starts
                cwd=cwd,
                env=env,
                **as_user(user),
            )
        except BaseException:
            for fd in (jobs_w, replies_r, recalls_w):
                os.close(fd)
            raise
        finally:
            for fd in fds:
                os.close(fd)
        self._jobs = os.fdopen(jobs_w, "wb")
        self._replies = os.fdopen(replies_r, "rb")
        self._recalls = os.fdopen(recalls_w, "wb")
        self._recall_lock = threading.Lock()  # a free slot's thread writes recalls

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, line: bytes) -> bool:
        """Hand over a job (a line made by :func:`encode`); False if the worker is gone."""
        return _write(self._jobs, line)

    def close_jobs(self) -> None:
        """Write no more jobs: the worker ends those it has, then exits."""
        with contextlib.suppress(OSError):
            self._jobs.close()

    def recall(self, keys: Sequence[str]) -> None:
        """Ask for jobs not started back (from a free slot's thread): the worker answers
        ``returned`` with those it gives back."""
        with self._recall_lock:
            _write(self._recalls, encode({"return": list(keys)}))

    def read(self) -> dict[str, Any] | None:
        """The worker's next message; None when it has exited (or broke the protocol)."""
        line = self._replies.readline(self.max_reply + 1)
        if not line:
            return None
        if len(line) > self.max_reply:
            # its job's code wrote into the pipe: reading on would hold any amount of memory
            self.broke = f"the job sent its worker's pipe more than {self.max_reply:,} bytes"
            self.close()
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
        for stream in (self._jobs, self._replies, self._recalls):
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
        for role in ("out", "err", "args"):  # left if it was killed
            with contextlib.suppress(OSError):
                (self.spare / f"{self.name}.{role}").unlink()


def encode(message: Mapping[str, Any]) -> bytes:
    """One line of the pipes' protocol."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def _write(stream: Any, line: bytes) -> bool:
    try:
        stream.write(line)
        stream.flush()
        return True
    except (OSError, ValueError):  # gone (ValueError: closed meanwhile)
        return False


def job_message(
    spec: JobSpec,
    env: Mapping[str, str],
    files: proc.AttemptFiles,
    spare: Path,
    result_max: int = DEFAULT_LIMITS.result_max_bytes,
    workdir: str | None = None,
) -> dict[str, Any]:
    """What a worker reads for one job (see :mod:`orchid.executors.poolworker`);
    ``workdir`` stands in for the payload's when it has none."""
    return {
        "key": spec.key,
        "result_max": result_max,  # a longer result fails the job in the worker
        "function": spec.payload.function or "",
        "args": dict(spec.args),
        "env": dict(env),
        "workdir": spec.payload.workdir or workdir,
        "out": str(files.out),
        "err": str(files.err),
        "files": {
            "spare": str(spare),
            "args": str(files.args),
            "result": str(files.result),
            "progress": str(files.progress),
        },
    }


def signature_of(
    python_path: Sequence[str], workdir: str | None, uid: int | None, workflow_id: int
) -> Signature:
    return tuple(python_path), workdir, uid, workflow_id


def pooled_signature(spec: JobSpec, user: OsUser | None = None) -> Signature | None:
    """The worker a job (run as ``user``) can run in (None: it needs a process of its own)."""
    payload = spec.payload
    if payload.kind != "function" or not payload.function:
        return None
    uid = None if user is None else user.uid
    return signature_of(payload.python_path, payload.workdir, uid, spec.workflow_id)


Sent = dict[str, tuple[Attempt, proc.AttemptFiles]]  # jobs written to a worker by key, oldest first


class Slots(Protocol):
    """What a :class:`WorkerPool` needs of the executor whose slots it serves: its queue,
    the OS user and environment of a job, and how attempts are reported."""

    def user(self, spec: JobSpec) -> OsUser | None:
        """The OS user the job runs as (None: as we do); StartError if there is none."""
        ...

    def base_env(self, user: OsUser | None) -> dict[str, str]:
        """What jobs (of ``user``) inherit of our environment."""
        ...

    def take(self, wanted: Callable[[JobSpec], bool]) -> Attempt | None:
        """The oldest queued job, now running, if it is ``wanted`` and no slot is free."""
        ...

    def requeue(self, attempts: Sequence[Attempt]) -> None:
        """Attempts that never started go back to the front of the queue, in order."""
        ...

    def withdrawn(self, attempt: Attempt) -> bool:
        """True (and the attempt forgotten) if it was cancelled before it started."""
        ...

    def began(self, attempt: Attempt, process: Any, log_uri: str, *, wake: bool) -> None:
        """The attempt's process started: report it, and arm its cancel and walltime."""
        ...

    def exited(self, attempt: Attempt) -> None:
        """The attempt's process is gone: no more signals to it."""
        ...

    def finish(self, attempt: Attempt, state: UpdateState, **fields: Any) -> None:
        """Report the attempt's end and free its slot."""
        ...


class WorkerPool:
    """Long-lived workers for ``function`` jobs, one per slot of a local executor.

    The executor asks :meth:`accepts` of a job its slot took, and hands it to :meth:`run`
    on that slot's thread; a free slot asks :meth:`recalls` (holding ``lock``) for jobs
    waiting behind a long one. ``lock`` is the executor's: it guards the attempts'
    mutable fields, which both sides touch.
    """

    def __init__(
        self, slots: int, log_dir: Path, limits: Limits, host: Slots, lock: threading.Lock
    ) -> None:
        self._host = host
        self._lock = lock
        self._log_dir = log_dir
        self._limits = limits  # result_max_bytes: a bigger result fails its job
        self._pool: list[PoolWorker | None] = [None] * slots
        self._piped: list[tuple[PoolWorker, Sent] | None] = [None] * slots
        self._folders: dict[Path, int] = {}  # job folders made for run_as users: their uid

    def accepts(self, spec: JobSpec) -> bool:
        """Whether the job runs in a worker (else: in a process of its own)."""
        return self._signature(spec) is not None

    def close(self) -> None:
        """Stop every worker (their slots' threads have ended)."""
        for i, worker in enumerate(self._pool):
            if worker is not None:
                worker.close()
                self._pool[i] = None

    def run(self, attempt: Attempt, slot: int) -> None:
        """Run function jobs in this slot's long-lived worker and report how they went.

        While a job runs, the next queued jobs for the same code are already written to the
        worker's pipe (one, or up to ``DEEP - 1`` while jobs are quick), so the worker goes
        from one job to the next without waiting for this thread; the slot keeps its
        worker while such jobs come. Returns when none is left in the pipe. A slot that
        is free meanwhile recalls the jobs waiting behind a long one (:meth:`recalls`).
        """
        signature = self._signature(attempt.spec)
        assert signature is not None  # the executor sends only function jobs here
        worker = self._worker(slot, signature, self._host.user(attempt.spec))
        sent: Sent = {}
        with self._lock:
            self._piped[slot] = (worker, sent)
        try:
            self._hand_over(worker, attempt, sent)
            self._serve(slot, worker, signature, sent)
        except Exception as exc:  # a bug here must not kill the slot or lose the jobs
            logger.exception("local executor: slot %d failed", slot)
            for lost, _ in list(sent.values()):
                self._host.finish(lost, "failed", error=f"executor error: {exc}")
            worker.close()
            self._pool[slot] = None
        finally:
            with self._lock:
                self._piped[slot] = None

    def _serve(self, slot: int, worker: PoolWorker, signature: Signature, sent: Sent) -> None:
        """Read the worker's replies until no job is left in its pipe (see run)."""
        depth = 2
        running: Attempt | None = None  # the job the worker said it started
        draining = False  # the jobs pipe is closed: the worker ends what it has, then exits
        while sent:
            reply = worker.read() or {}  # {}: the worker is gone
            event = reply.get("event")
            if event == "returned":  # recalled by a free slot before they started
                self._returned(sent, reply)
                continue
            entry = sent.get(reply.get("key", ""))
            if entry is not None and event == "start":
                running = entry[0]
                with self._lock:
                    running.started = time.monotonic()
                # its ``running`` report waits for the next wake-up (an end, a poll), so a
                # short job is reported once, with its start
                self._host.began(running, worker.process, str(entry[1].out), wake=False)
                while not draining and len(sent) < depth:
                    nxt = self._host.take(lambda spec: self._signature(spec) == signature)
                    if nxt is None or not self._hand_over(worker, nxt, sent):
                        break
                continue
            if entry is None or event != "done":  # the worker died (with its job)
                if reply:  # or it broke the protocol: it is stopped
                    worker.close()
                code = worker.wait()
                if running is None and draining:  # killed between jobs: none was its fault
                    self._drop_worker(slot, worker, sent)
                    return
                key = running.spec.key if running is not None else next(iter(sent))
                attempt, files = sent.pop(key)
                self._host.exited(attempt)
                self._drop_worker(slot, worker, sent)
                died = (
                    worker.broke
                    or proc.exit_message(code, files.err)
                    or "the worker process stopped"
                )
                self._finish_pooled(attempt, code, None, died, None, files)
                return
            attempt, files = sent.pop(reply["key"])
            running = None
            self._host.exited(attempt)  # no signal meant for this job may reach the next one
            usage = Usage(
                wall_s=float(reply.get("wall", 0.0)),
                cpu_user_s=float(reply.get("user", 0.0)),
                cpu_system_s=float(reply.get("system", 0.0)),
                max_rss_kb=int(reply.get("rss", 0)),
            )
            depth = DEEP if usage.wall_s < QUICK_S else 2
            code = int(reply.get("code", 1))
            failed = reply.get("error") or proc.exit_message(code, files.err)
            self._finish_pooled(attempt, code, reply.get("result"), failed, usage, files)
            if attempt.signalled and not draining:
                # a cancel or walltime signal raced the job's end: it may still reach the
                # worker, which may be running the next job by now. Write it nothing more;
                # the jobs it ends are reported, the one a late signal kills fails, and
                # those it never started go back to the queue
                draining = True
                worker.close_jobs()
        if draining:
            self._drop_worker(slot, worker, sent)

    def _returned(self, sent: Sent, reply: Mapping[str, Any]) -> None:
        """The worker gave back recalled jobs: they queue again. Those it did not have
        yet (still on their way down the pipe) may be asked for again."""
        back = set(reply.get("keys", ()))
        self._host.requeue([sent.pop(k)[0] for k in back if k in sent])
        with self._lock:
            for key in reply.get("asked", ()):
                entry = sent.get(key)
                if entry is not None and key not in back and entry[0].started is None:
                    entry[0].recalled = False

    def recalls(self) -> tuple[list[tuple[PoolWorker, list[str]]], bool]:
        """For a free slot (the lock held): the jobs waiting in a worker's pipe behind one
        that has run for ``RECALL_S``, each asked for once (the worker gives back those it
        has not started, ``returned``, and they queue again); and whether any job still
        waits in a pipe unasked (the free slot looks again in ``RECALL_S``)."""
        now = time.monotonic()
        asks, left = [], False
        for piped in self._piped:
            if piped is None:
                continue
            worker, sent = piped
            attempts = [a for a, _ in list(sent.values())]
            waiting = [a for a in attempts if a.started is None and not a.recalled]
            if not any(a.started is not None and now - a.started >= RECALL_S for a in attempts):
                left = left or bool(waiting)
                continue
            for a in waiting:
                a.recalled = True
            if waiting:
                asks.append((worker, [a.spec.key for a in waiting]))
        return asks, left

    def _hand_over(self, worker: PoolWorker, attempt: Attempt, sent: Sent) -> bool:
        """Write the job to the worker's pipe: it starts when the worker is free.

        A job written ahead (others are in the pipe) must fit in ``AHEAD_BYTES`` with
        them, so that the write never waits for a busy worker (which may be waiting for
        this thread to read a long reply); one that does not goes back to the queue and
        False is returned."""
        spec = attempt.spec
        files = proc.AttemptFiles.for_job(self._log_dir, spec)
        workdir = None
        try:
            env = proc.job_variables(spec, files)
            user = self._host.user(spec)
            if user is not None:  # its folder, made here: the log folder is closed to it
                workdir = str(files.out.parent)
                if self._folders.get(files.out.parent) != user.uid:
                    own_folder(files.out.parent, user)
                    if len(self._folders) > FOLDERS_KNOWN:
                        self._folders.clear()
                    self._folders[files.out.parent] = user.uid
        except proc.StartError as exc:
            self._host.finish(attempt, "failed", error=str(exc), log_uri=str(files.out))
            return True
        except OSError as exc:
            error = f"cannot write logs in {files.out.parent}: {exc.strerror or exc}"
            self._host.finish(attempt, "failed", error=error, log_uri=str(files.out))
            return True
        line = encode(
            job_message(spec, env, files, worker.spare, self._limits.result_max_bytes, workdir)
        )
        if sent:
            ahead = sum(a.size for a, _ in sent.values() if a.started is None)
            if ahead + len(line) > AHEAD_BYTES:
                self._host.requeue([attempt])
                return False
        if self._host.withdrawn(attempt):  # cancelled before it started: as if still queued
            return True
        attempt.size = len(line)
        sent[spec.key] = (attempt, files)
        worker.send(line)  # a worker that is gone shows when its reply is read
        return True

    def _drop_worker(self, slot: int, worker: PoolWorker, sent: Sent) -> None:
        """Stop the slot's worker; the jobs that waited in its pipe go back to the queue."""
        worker.close()
        self._pool[slot] = None
        self._host.requeue([attempt for attempt, _ in list(sent.values())])
        sent.clear()

    def _finish_pooled(
        self,
        attempt: Attempt,
        code: int,
        result_text: str | None,
        error: str | None,
        usage: Usage | None,
        files: proc.AttemptFiles,
    ) -> None:
        result: Any = None
        if attempt.cancelled:
            error = "cancelled"
        elif attempt.timed_out:
            error = f"walltime of {attempt.spec.resources.walltime_s:g}s exceeded"
        elif error is None and result_text is not None:
            if len(result_text) > self._limits.result_max_bytes:  # the worker checks it too
                error = self._limits.result_too_large(len(result_text))
            else:
                try:
                    result = jsonvalues.loads(result_text)
                except ValueError as exc:
                    error = proc.truncate(f"the result is not valid JSON: {exc}")
        state: UpdateState = "failed" if error else "succeeded"
        self._host.finish(
            attempt,
            state,
            exit_code=code,
            result=result,
            error=error,
            usage=usage,
            log_uri=str(files.out),
        )

    def _signature(self, spec: JobSpec) -> Signature | None:
        """The worker a job can run in (None: a process of its own, or it cannot start)."""
        try:
            return pooled_signature(spec, self._host.user(spec))
        except proc.StartError:
            return None

    def _worker(self, slot: int, signature: Signature, user: OsUser | None) -> PoolWorker:
        """This slot's worker for jobs with this python_path and workdir, run as ``user``
        (a new one if the last served others, or died)."""
        worker = self._pool[slot]
        if worker is not None and (worker.signature != signature or not worker.alive()):
            worker.close()
            worker = None
        if worker is None:
            worker = PoolWorker(
                signature,
                self._log_dir,
                self._host.base_env(user),
                user,
                max_reply=2 * self._limits.result_max_bytes + REPLY_OVERHEAD,
            )
            self._pool[slot] = worker
        return worker
