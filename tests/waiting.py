"""The one way a test waits: poll a check until it holds, fail after a deadline.

Deadlines are only reached when something is stuck (tests never assert wall-clock times),
so they are generous: a loaded CI machine must not fail a test that would pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

WAIT_S = 60.0

T = TypeVar("T")


def wait_for(
    what: str | Callable[[], str],
    check: Callable[[], T],
    timeout: float = WAIT_S,
    every: float = 0.05,
) -> T:
    """Call ``check`` until it returns something truthy, and return that; fail the test
    (naming ``what``, or what it returns then, and the last value seen) after ``timeout``
    seconds."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            said = what if isinstance(what, str) else what()
            pytest.fail(f"{said} did not happen within {timeout:g} s (last: {last!r})")
        time.sleep(every)
