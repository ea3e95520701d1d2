"""A long-lived worker process of the local executor: runs ``function`` jobs one after another.

Started as ``python -m orchid.executors.poolworker RFD WFD CFD NAME`` with three pipes (and
the name of its spare files, see :class:`Files`): it reads
one job per line (JSON) on RFD, recalls on CFD (see :class:`Inbox`), and answers on WFD with a ``start`` line when it begins and a
``done`` line when it ends (the executor may already have written the next job: it waits
in the pipe while this one runs). Each job runs as it would in a process of its own
(``orchid.executors.wrapper``): its arguments as keyword arguments, its environment and
working directory, stdout and stderr in its log files, the same exit codes (1: it raised,
2: not found or bad input, 3: a result that is not JSON; ``sys.exit(n)``: n) — but the
interpreter, and the modules it imported, stay: no start-up cost per job. The executor
gives a worker only jobs with the same ``python_path``, so a module name always means the
same file. A job that crashes the process (a segfault, ``os._exit``) ends the worker; the
executor reports it from the exit status and starts another. A worker whose agent died
finishes the job it is running, starts no other, and exits.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import select
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from orchid import jobvars
from orchid.executors.wrapper import (
    EXIT_BAD_INPUT,
    EXIT_NOT_JSON,
    EXIT_RAISED,
    FunctionNotFoundError,
    load_function,
)

_functions: dict[str, Callable[..., Any]] = {}


def _cpu() -> tuple[float, float]:
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime


class Replies:
    """The pipe back to the executor, written by the job loop and the inbox's thread."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, message: Mapping[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with self._lock:
            self._out.write(line)
            self._out.flush()


class Inbox:
    """The jobs the executor wrote ahead, and its recalls (``{"return": [keys]}`` on a pipe
    of their own: another slot is free while this worker runs a long job).

    The job loop reads the jobs pipe only when it needs the next job; a thread blocked on
    the recall pipe (it wakes for nothing else, so it never competes with the jobs for
    the interpreter) reads what jobs wait in the jobs pipe, keeps back the recalled ones
    not started, and answers ``returned`` with their keys.
    """

    def __init__(self, jobs: int, recalls: int, replies: Replies) -> None:
        os.set_blocking(jobs, False)
        self._fd = jobs
        self._replies = replies
        self._partial = b""
        self._queue: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._ended = False
        # the recall thread may take waiting jobs from the pipe while the job loop is about
        # to sleep on it: it then wakes the loop through this pipe
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        threading.Thread(
            target=self._recalls, args=(recalls,), name="orchid-recalls", daemon=True
        ).start()

    def _drain(self) -> None:
        """Take what the jobs pipe holds now (the lock held)."""
        while not self._ended:
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                self._ended = True
                return
            *lines, self._partial = (self._partial + chunk).split(b"\n")
            self._queue.extend(json.loads(line) for line in lines if line)

    def next(self) -> dict[str, Any] | None:
        """The next job to run; None when the executor closed the pipe and none is left."""
        while True:
            with self._lock:
                self._drain()
                if self._queue:
                    return self._queue.popleft()
                if self._ended:
                    return None
            readable, _, _ = select.select([self._fd, self._wake_r], [], [])
            if self._wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)

    def _recalls(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as recalls:
            for line in recalls:
                keys = set(json.loads(line)["return"])
                with self._lock:
                    self._drain()
                    back = [job["key"] for job in self._queue if job["key"] in keys]
                    self._queue = deque(job for job in self._queue if job["key"] not in keys)
                    kept = bool(self._queue)
                self._replies.send({"event": "returned", "keys": back, "asked": sorted(keys)})
                if kept:  # jobs it read for the loop, which may be asleep on the pipe
                    os.write(self._wake_w, b"!")


def _call(target: str, args: Any) -> tuple[int, str | None]:
    """Run the function; (exit code, JSON text of the result). Problems go to stderr."""
    if not isinstance(args, dict):
        print("orchid: the job's args must be a JSON object", file=sys.stderr)
        return EXIT_BAD_INPUT, None
    try:
        function = _functions.get(target) or load_function(target)
    except FunctionNotFoundError as exc:
        print(f"orchid: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT, None
    _functions[target] = function
    try:
        value = function(**args)
    except SystemExit as exc:  # as a process of its own would exit
        if exc.code is None or exc.code == 0:
            return 0, None
        if isinstance(exc.code, int):
            return exc.code, None
        print(exc.code, file=sys.stderr)
        return 1, None
    except Exception:
        traceback.print_exc()
        return EXIT_RAISED, None
    try:
        return 0, json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        print(
            f"orchid: the return value of {target} is not JSON-serialisable: {exc}",
            file=sys.stderr,
        )
        return EXIT_NOT_JSON, None


class Files:
    """An attempt's files without making new ones: the worker keeps a spare log of each
    kind (out, err) in ``<log_dir>/.spare/<name>.<kind>`` and renames it into place for a
    job (making a file costs a new inode, up to 0.2 ms on a busy ext4 and more on shared
    file systems; a rename does not). After the job an empty log goes back to be the next
    job's, and its path becomes a hard link to the folder's read-only ``.empty``, so every
    attempt still has its log; a log with output stays and the next job gets a new spare.
    The arguments go to the worker's own ``<name>.args``, rewritten for each job. (Output
    that a job's background process writes after the job ended goes to the next job's
    log if the job's own was empty, and such a process reading ``ORCHID_ARGS_FILE`` late
    reads a later job's arguments: a pool worker is for functions that end with their
    work; use a process of its own otherwise.)

    Anything unexpected (no spare folder, a job that replaced its files) falls back to
    plain new files, as a process of its own would have.
    """

    def __init__(self, name: str) -> None:
        self.name = name  # unique among the workers sharing the log folder (hosts too)
        self._spares: dict[str, int] = {}  # role -> fd of an empty spare at its spare path
        self._lent: dict[str, tuple[int, str]] = {}  # role -> (fd, path) during a job
        self._folders: set[str] = set()  # job folders known to exist
        self._dir: str | None = None
        self._dir_made = False
        self._args: int | None = None  # fd of the worker's args file

    def spare_path(self, role: str) -> str:
        return f"{self._dir}/{self.name}.{role}"

    def place(self, job: Mapping[str, Any]) -> tuple[int, int]:
        """Ready the job's files; its stdout and stderr fds. OSError: they cannot be."""
        files = job["files"]
        folder = os.path.dirname(job["out"])
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        for name in ("result", "progress"):  # left by an earlier run of this attempt
            with contextlib.suppress(FileNotFoundError):
                os.unlink(files[name])
        if files.get("spare") != self._dir:
            self._dir, self._dir_made = files.get("spare"), False
            if self._args is not None:
                os.close(self._args)
                self._args = None
        self._write_args(job)
        return self._lend("out", job["out"]), self._lend("err", job["err"])

    def _write_args(self, job: Mapping[str, Any]) -> None:
        """The job's arguments in the worker's own args file, rewritten for every job
        (``ORCHID_ARGS_FILE`` names it); the attempt's path if that file cannot be."""
        text = (job["env"].get(jobvars.ARGS) or json.dumps(job["args"])).encode()
        if self._args is None and self._dir is not None:
            with contextlib.suppress(OSError):
                self._make_dir()
                self._args = os.open(self.spare_path("args"), os.O_RDWR | os.O_CREAT, 0o644)
        if self._args is None:
            with open(job["files"]["args"], "wb") as f:
                f.write(text)
            return
        os.ftruncate(self._args, 0)
        os.pwrite(self._args, text, 0)
        job["env"][jobvars.ARGS_FILE] = self.spare_path("args")

    def _make_dir(self) -> None:
        if not self._dir_made:
            os.makedirs(str(self._dir), exist_ok=True)
            self._dir_made = True

    def _lend(self, role: str, path: str) -> int:
        fd = self._spares.pop(role, None)
        if fd is not None and self._dir is not None:
            try:
                os.rename(self.spare_path(role), path)
                self._lent[role] = (fd, path)
                return fd
            except OSError:
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # never write through an old path: it may be a link to .empty
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        self._lent[role] = (fd, path)
        return fd

    def give_back(self) -> None:
        """After the job: keep logs with output, take back the rest as spares."""
        for role, (fd, path) in self._lent.items():
            if not (self._dir and self._take_back(role, fd, path)):
                os.close(fd)
        self._lent.clear()

    def _take_back(self, role: str, fd: int, path: str) -> bool:
        try:
            mine = os.fstat(fd)
            if mine.st_size:
                return False  # a log with output stays
            there = os.stat(path)
            if (there.st_ino, there.st_dev) != (mine.st_ino, mine.st_dev):
                return False  # the job put another file there
            self._make_dir()
            os.rename(path, self.spare_path(role))
            self._link_empty(path)
        except OSError:
            return False
        self._spares[role] = fd
        return True

    def _link_empty(self, path: str) -> None:
        """Make ``path`` the folder's shared empty log (a new empty file if links fail)."""
        empty = os.path.join(os.path.dirname(path), ".empty")
        for _ in range(2):
            try:
                os.link(empty, path)
                return
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno != errno.EMLINK:  # no hard links here
                    break
                os.unlink(empty)  # 65,000 links on ext4: start another
            with contextlib.suppress(FileExistsError):
                os.close(os.open(empty, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444))
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))

    def close(self) -> None:
        """Remove the spares and the args file (at exit)."""
        spares = dict(self._spares)
        if self._args is not None:
            spares["args"] = self._args
        for role, fd in spares.items():
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.spare_path(role))
        self._spares.clear()
        self._args = None


def run(job: Mapping[str, Any], out: Replies, home: str, files: Files) -> None:
    """One job: its files on fds 1 and 2, its environment and folder, then back to ours."""
    try:
        logs = files.place(job)
    except OSError as exc:
        files.give_back()
        folder = os.path.dirname(job["out"])
        problem = f"cannot write logs in {folder}: {exc.strerror}"
        out.send({"key": job["key"], "event": "done", "code": EXIT_BAD_INPUT, "error": problem})
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(logs[0], 1)
    os.dup2(logs[1], 2)
    before = _environ()
    os.environ.update(job["env"])
    code, result = EXIT_BAD_INPUT, None
    too_big: str | None = None
    cpu0 = _cpu()
    try:
        os.chdir(job.get("workdir") or home)
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        out.send({"key": job["key"], "event": "start"})
        started = time.monotonic()
        code, result = _call(job["function"], job["args"])
        wall = time.monotonic() - started
        result_max = job.get("result_max")
        if result is not None and isinstance(result_max, int) and len(result) > result_max:
            too_big = (
                f"the result is {len(result):,} bytes as JSON, more than the limit of "
                f"{result_max:,} (setting result_max_bytes, ORCHID_RESULT_MAX_BYTES); write "
                "large outputs to files and return their names"
            )
            code, result = 0, None
    except OSError as exc:
        print(f"orchid: cannot enter the workdir: {exc}", file=sys.stderr)
        wall = 0.0
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        _restore(before)
    files.give_back()
    cpu = _cpu()
    out.send(
        {
            "key": job["key"],
            "event": "done",
            "code": code,
            "result": result,
            "error": too_big,
            "wall": wall,
            "user": cpu[0] - cpu0[0],
            "system": cpu[1] - cpu0[1],
            "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        },
    )


def _environ() -> dict[bytes, bytes]:
    """A copy of the environment as the OS holds it: copying ``os.environ`` itself decodes
    every variable, which costs more than the whole of a short job."""
    return dict(os.environ._data)  # type: ignore[attr-defined]


def _restore(before: Mapping[bytes, bytes]) -> None:
    """Put the environment back as it was before the job (which may have changed it)."""
    now = _environ()
    if now == before:
        return
    for key in now.keys() - before.keys():
        os.unsetenv(key)
        del os.environ._data[key]  # type: ignore[attr-defined]
    for key, value in before.items():
        if now.get(key) != value:
            os.environ[os.fsdecode(key)] = os.fsdecode(value)


def main() -> int:
    rfd, wfd, cfd = (int(fd) for fd in sys.argv[1:4])
    parent = os.getppid()  # the agent
    home = os.getcwd()
    files = Files(sys.argv[4] if len(sys.argv) > 4 else str(os.getpid()))
    try:
        with os.fdopen(wfd, "wb") as out:
            replies = Replies(out)
            inbox = Inbox(rfd, cfd, replies)
            while (job := inbox.next()) is not None:
                if os.getppid() != parent:
                    # the agent died (SIGKILL): a job it handed over but we had not started
                    # yet is not ours to run any more; its lease makes another agent run it
                    return 0
                run(job, replies, home, files)
    finally:
        files.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
