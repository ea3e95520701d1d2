"""A long-lived worker process of the local executor: runs ``function`` jobs one after another.

Started as ``python -m orchid.executors.poolworker RFD WFD`` with two pipes: it reads one
job per line (JSON) on RFD and answers on WFD with a ``start`` line when it begins and a
``done`` line when it ends. Each job runs as it would in a process of its own
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

import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

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


def _send(out: BinaryIO, message: Mapping[str, Any]) -> None:
    out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    out.flush()


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


def run(job: Mapping[str, Any], out: BinaryIO, home: str) -> None:
    """One job: its files on fds 1 and 2, its environment and folder, then back to ours."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    files = (
        os.open(job["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        os.open(job["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
    )
    os.dup2(files[0], 1)
    os.dup2(files[1], 2)
    before = _environ()
    os.environ.update(job["env"])
    code, result = EXIT_BAD_INPUT, None
    cpu0 = _cpu()
    try:
        os.chdir(job.get("workdir") or home)
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        _send(out, {"key": job["key"], "event": "start"})
        started = time.monotonic()
        code, result = _call(job["function"], job["args"])
        wall = time.monotonic() - started
    except OSError as exc:
        print(f"orchid: cannot enter the workdir: {exc}", file=sys.stderr)
        wall = 0.0
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*files, *saved):
            os.close(fd)
        _restore(before)
    cpu = _cpu()
    _send(
        out,
        {
            "key": job["key"],
            "event": "done",
            "code": code,
            "result": result,
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
    rfd, wfd = int(sys.argv[1]), int(sys.argv[2])
    parent = os.getppid()  # the agent
    home = os.getcwd()
    with os.fdopen(rfd, "rb") as jobs, os.fdopen(wfd, "wb") as out:
        for line in jobs:
            if os.getppid() != parent:
                # the agent died (SIGKILL): a job it handed over but we had not started yet
                # is not ours to run any more; its lease will make another agent run it
                return 0
            run(json.loads(line), out, home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
