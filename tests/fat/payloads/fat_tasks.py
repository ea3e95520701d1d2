"""Tasks and workflows the Function-as-a-Task tests run (shipped to jobs from this folder).

Kept apart from the test modules, and free of test imports, so that each job imports only
this file and orchid.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from orchid import TaskFailed, task, workflow

if TYPE_CHECKING:
    from fractions import Fraction


def _mark(name: str) -> None:
    """Count a run of ``name`` in $FAT_MARKS (tests read how often each task ran)."""
    folder = os.environ.get("FAT_MARKS")
    if folder:
        with open(Path(folder) / f"{name}.runs", "a") as fh:
            fh.write(f"{os.getpid()}\n")


@task
def square(x: int) -> int:
    return x * x


@task(retries=1, retry_delay=0.0)
def fragile(x: int) -> int:
    _mark(f"fragile-{x}")
    raise ValueError(f"no luck with {x}")


@task
def exact(n: int) -> Fraction:  # not JSON: travels pickled
    from fractions import Fraction

    return Fraction(1, n)


@task
def slow(x: int) -> int:
    """Sleeps $FAT_SLOW_<x> seconds (read in the job: not an argument, so not its identity)."""
    _mark(f"slow-{x}")
    time.sleep(float(os.environ.get(f"FAT_SLOW_{x}", "0")))
    return x


@workflow(name="squares")
def squares(n: int) -> int:
    return sum(square.map([{"x": i} for i in range(n)]).result())


@workflow(name="branchy")
def branchy(x: int) -> dict[str, object]:
    """Catches a failing task and goes on another way."""
    try:
        fragile(x).result()
        went = "fragile"
    except TaskFailed as exc:
        went = f"fallback after: {exc.reason}"
    return {"went": went, "exact": exact(4).result(), "square": square(x).result()}


@workflow(name="squares-server", on="server")
def squares_server(n: int) -> dict[str, object]:
    values = square.map([{"x": i} for i in range(n)])
    first = next(iter(values))  # as jobs finish
    return {"total": sum(values.result()), "first_seen": first, "third": exact(3).result()}


@workflow(name="resumable")
def resumable(marks: str) -> int:
    """Two steps; between them it tells the test (a file) that the first one is done."""
    a = slow(1).result()
    Path(marks, "first-done").write_text("yes")
    b = slow(2).result()
    return a + b


@workflow(name="sloppy")
def sloppy(x: int) -> int:
    return len(str(x)).result()  # type: ignore[attr-defined]  # a plain value, not a future
