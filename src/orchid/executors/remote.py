"""Run one attempt on a node that is not the agent's (a Dask worker), and bring back its end.

The node runs the same command the local executor would (:func:`job_command`), in its own
session, in a scratch folder, with walltime and cancellation enforced here. What comes back
is an :class:`Outcome`: exit code, result, failure reason, resource use and the tails of
stdout and stderr, which the executor writes into the agent's log folder so that
``orchid logs`` reads them like any local job's.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchid import jobvars
from orchid.executors import _process as proc
from orchid.executors.base import JobSpec, Usage
from orchid.executors.jobcommand import job_command

logger = logging.getLogger(__name__)

LOG_TAIL = 4 * 1024 * 1024
"""How much of each of stdout and stderr travels back (the end of it, if longer)."""

StopWait = Callable[[float], bool]
"""Blocks up to the given seconds; True once the attempt must stop (it was cancelled)."""


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended on its node."""

    exit_code: int | None
    result: Any = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    stdout: bytes = b""
    stderr: bytes = b""
    node: str = ""  # the host (and worker) it ran on; the job sees it as $ORCHID_NODE


def run_attempt(
    spec: JobSpec,
    *,
    scratch: Path | None = None,
    stop_wait: StopWait | None = None,
    node: str = "",
    kill_grace_s: float = 5.0,
    python: str = sys.executable,
) -> Outcome:
    """Run ``spec`` here to its end; see the module docstring."""
    node = node or socket.gethostname()
    root = Path(tempfile.mkdtemp(prefix=f"orchid-{spec.key}-", dir=scratch))
    files = proc.AttemptFiles.for_job(root, spec)
    try:
        try:
            files.prepare(spec.args)
            command = job_command(spec, python=python)
            env = proc.build_env(spec, files)
            env.update(command.env)
            env[jobvars.NODE] = node
            workdir = spec.payload.workdir
            cwd = workdir if workdir and os.path.isdir(workdir) else str(root)
            process = proc.spawn(command.argv, cwd, env, files)
        except proc.StartError as exc:
            return Outcome(None, error=str(exc), node=node)
        watch = _Watch(process.pid, kill_grace_s)
        started = time.monotonic()
        threading.Thread(
            target=watch.run,
            args=(stop_wait, spec.resources.walltime_s),
            name=f"orchid-watch-{spec.key}",
            daemon=True,
        ).start()
        status, usage = proc.wait(process.pid, started, watch.exited)
        exit_code, error = proc.exit_reason(status, files.err)
        process.returncode = exit_code if exit_code is not None else -1
        result: Any = None
        if watch.cancelled:
            error = "cancelled"
        elif watch.timed_out:
            error = f"walltime of {spec.resources.walltime_s:g}s exceeded"
        elif error is None:
            result, error = proc.read_result(files)
        return Outcome(
            exit_code,
            result,
            error,
            usage,
            _tail(files.out),
            _tail(files.err),
            node,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


class _Watch:
    """Stops the attempt's process group on cancel or walltime, never after it exited."""

    def __init__(self, pgid: int, grace_s: float) -> None:
        self._pgid = pgid
        self._grace_s = grace_s
        self._lock = threading.Lock()
        self._gone = threading.Event()
        self.cancelled = False
        self.timed_out = False

    def exited(self) -> None:
        with self._lock:
            self._gone.set()

    def run(self, stop_wait: StopWait | None, walltime_s: float | None) -> None:
        deadline = None if walltime_s is None else time.monotonic() + walltime_s
        while not self._gone.is_set():
            step = 2.0 if deadline is None else max(0.0, min(2.0, deadline - time.monotonic()))
            if stop_wait is not None:
                try:
                    stop = stop_wait(step)
                except Exception:  # the scheduler is briefly out of reach: try again
                    logger.debug("cancel check failed", exc_info=True)
                    stop = False
                    self._gone.wait(step)
            else:
                stop = False
                self._gone.wait(step)
            if stop:
                self.cancelled = True
                break
            if deadline is not None and time.monotonic() >= deadline:
                self.timed_out = True
                break
        else:
            return
        self._signal(signal.SIGTERM)
        if not self._gone.wait(self._grace_s):
            self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        with self._lock:  # the process is an unreaped zombie until exited() ran: no pid reuse
            if not self._gone.is_set():
                proc.kill_group(self._pgid, signum)


def _tail(path: Path, limit: int = LOG_TAIL) -> bytes:
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size <= limit:
                f.seek(0)
                return f.read()
            f.seek(size - limit)
            return b"[... the start of this log was cut ...]\n" + f.read()
    except OSError:
        return b""
