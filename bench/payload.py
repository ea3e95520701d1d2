"""The no-op Python payload every system runs in the benchmarks."""

from __future__ import annotations

import os
import time
from typing import Any


def noop(**_: Any) -> None:
    """Do nothing: what is measured is the orchestrator, not the job."""


def ledger(pause: float = 0.0, **_: Any) -> None:
    """Write one line per execution to the file $ORCHID_LEDGER: which job, which attempt,
    which process, when it started and when it ended (the chaos runs count executions).

    ``pause`` seconds of sleep keep jobs in flight long enough to be caught by a kill.
    """
    start = time.time()
    if pause:
        time.sleep(pause)
    line = (
        f"{os.environ['ORCHID_WORK']}/{os.environ['ORCHID_JOB_NAME']} "
        f"{os.environ['ORCHID_ATTEMPT']} {os.getpid()} {start:.6f} {time.time():.6f}\n"
    )
    fd = os.open(os.environ["ORCHID_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write of a short line: appends never interleave
    finally:
        os.close(fd)
