"""One attempt the local executor has taken from its queue, shared with its worker pool."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field

from orchid.executors.base import JobSpec


@dataclass(eq=False)
class Attempt:
    """A job a worker thread has taken. Mutable fields are guarded by the executor's lock."""

    spec: JobSpec
    process: subprocess.Popen[bytes] | None = None
    exited: bool = False  # the child has exited; its group must not be signalled any more
    cancelled: bool = False
    timed_out: bool = False
    signalled: bool = False  # a signal was sent to its process group
    started: float | None = None  # monotonic time its process (or pool worker) began it
    recalled: bool = False  # asked back from a worker's pipe for a free slot
    size: int = 0  # bytes of its message to a pool worker
    timers: list[threading.Timer] = field(default_factory=list)
