"""What the benchmark scripts share: process-tree memory, percentiles, tables, machine info.

Standard library only: the peers' runners import it from their own virtualenvs.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def machine() -> str:
    """One line naming the machine, for the results file."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def load() -> str:
    """The 1/5/15-minute load averages (figures measured while the machine is busy are
    provisional)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: the fields start after the last ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        out.setdefault(int(fields[1]), []).append(int(entry.name))
    return out


def _tree(root: int) -> list[int]:
    """``root`` and all its descendants now alive."""
    kids = _children()
    out, stack, seen = [], [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        out.append(pid)
        stack.extend(kids.get(pid, ()))
    return out


def tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants, in MiB (shared pages count
    once per process, so this overstates a little)."""
    total = 0
    for pid in _tree(root):
        with contextlib.suppress(OSError, ValueError, IndexError):  # it has just exited
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return total / 2**20


TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) used so far by ``root`` and its descendants, including
    descendants that already exited and were waited for."""
    total = 0
    for pid in _tree(root):
        with contextlib.suppress(OSError, ValueError, IndexError):  # it has just exited
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / TICK


class PeakRss:
    """Samples the memory of a process tree in a thread until stopped; keeps the peak."""

    def __init__(self, root: int | None = None, every: float = 0.2) -> None:
        self.root = root or os.getpid()
        self.every = every
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()

    def sample(self) -> None:
        self.peak = max(self.peak, tree_rss_mb(self.root))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of already sorted values by the nearest-rank rule."""
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def ms(value: float | None) -> float | None:
    return None if value is None else round(1000 * value, 2)


FIELDS = (
    "system",
    "shape",
    "jobs",
    "db",
    "agents",
    "executor",
    "submit_s",
    "run_s",
    "wall_s",
    "jobs_per_s",
    "release_p50_ms",
    "release_p99_ms",
    "step_p50_ms",
    "step_p99_ms",
    "peak_rss_mb",
    "cpu_s",
    "db_cpu_s",
    "status",
)


def emit(row: dict[str, Any]) -> None:
    """One JSON object per line, flushed (a driver script reads them as they come)."""
    print(json.dumps(row), flush=True)


def table(rows: Iterable[dict[str, Any]], fields: Sequence[str] = FIELDS) -> str:
    """A plain text table of the rows, one column per field present in any row."""
    rows = list(rows)
    cols = [f for f in fields if any(f in r for r in rows)]
    cells = [[_cell(r.get(f)) for f in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def wait_until(check: Any, timeout: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


# --- interleaved A/B comparisons -----------------------------------------------------------
#
# On a shared machine one run against another says little: the load moves wall times by a
# third. A comparison runs pairs of runs, back to back, alternating which goes first: A/B
# pairs (the change off, then on, or on then off) and A/A pairs (the same configuration
# twice), which measure the noise. A difference is "within noise" when the median B/A
# ratio lies inside the spread of the A/A ratios.


def pair_schedule(pairs: int) -> list[tuple[int, str, tuple[str, str]]]:
    """``pairs`` A/B pairs interleaved with as many A/A pairs: (pair number, kind, the two
    arms in the order they run). A/B pairs alternate AB, BA (a drift of the load during the
    session then cancels); an A/A pair follows each A/B pair."""
    out: list[tuple[int, str, tuple[str, str]]] = []
    for i in range(pairs):
        out.append((len(out) + 1, "A/B", ("A", "B") if i % 2 == 0 else ("B", "A")))
        out.append((len(out) + 1, "A/A", ("A", "A")))
    return out


def pair_ratios(
    pair: int, kind: str, first: dict[str, Any], second: dict[str, Any], fields: Sequence[str]
) -> dict[str, Any]:
    """One pair's ratios: B/A for an A/B pair (whichever ran first), second/first for A/A."""
    a, b = (second, first) if kind == "A/B" and first["arm"] == "B" else (first, second)
    out: dict[str, Any] = {"pair": pair, "kind": kind, "order": f"{first['arm']}{second['arm']}"}
    for f in fields:
        x, y = a.get(f), b.get(f)
        out[f"{f}_ratio"] = round(y / x, 4) if x and y is not None else None
    return out


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (the usual IQR definition)."""
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def ratio_summary(ratios: Sequence[dict[str, Any]], fields: Sequence[str]) -> list[dict[str, Any]]:
    """Per measure and kind of pair: how many pairs, the median ratio, IQR, min and max; and
    for each measure a verdict: is the A/B median inside the A/A range (min..max)?"""
    rows: list[dict[str, Any]] = []
    for f in fields:
        key = f"{f}_ratio"
        spread: dict[str, tuple[float, float]] = {}
        medians: dict[str, float] = {}
        for kind in ("A/A", "A/B"):
            vals = [r[key] for r in ratios if r["kind"] == kind and r.get(key) is not None]
            if not vals:
                continue
            medians[kind] = _quantile(vals, 0.5)
            spread[kind] = (min(vals), max(vals))
            rows.append(
                {
                    "measure": f,
                    "pairs": kind,
                    "n": len(vals),
                    "median": round(medians[kind], 3),
                    "q1": round(_quantile(vals, 0.25), 3),
                    "q3": round(_quantile(vals, 0.75), 3),
                    "min": round(min(vals), 3),
                    "max": round(max(vals), 3),
                }
            )
        if "A/B" in medians and "A/A" in spread:
            lo, hi = spread["A/A"]
            inside = lo <= medians["A/B"] <= hi
            rows[-1]["verdict"] = (
                "within noise"
                if inside
                else ("above noise" if medians["A/B"] > hi else "below noise")
            )
    return rows


SUMMARY_FIELDS = ("measure", "pairs", "n", "median", "q1", "q3", "min", "max", "verdict")


def compare_pairs(
    pairs: int,
    one: Callable[[int, str, str], dict[str, Any]],
    fields: Sequence[str],
    ratio_fields: Sequence[str],
    legend: str = "",
) -> None:
    """Run the interleaved pairs of :func:`pair_schedule`: ``one(pair, kind, arm)`` runs one
    arm and returns its row. Each row, each pair's ratios and their summary are emitted as
    they come, then printed as tables, with ``legend`` (what A and B are) and the machine."""
    rows: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    for pair, kind, arms in pair_schedule(pairs):
        two = []
        for arm in arms:
            row = one(pair, kind, arm)
            emit(row)
            two.append(row)
        rows += two
        ratios.append(pair_ratios(pair, kind, *two, ratio_fields))
        emit(ratios[-1])
    summary = ratio_summary(ratios, ratio_fields)
    for s in summary:
        emit({"summary": True, **s})
    print()
    print(table(rows, fields))
    print()
    print(table(ratios, ("pair", "kind", "order", *(f"{f}_ratio" for f in ratio_fields))))
    print()
    print(table(summary, SUMMARY_FIELDS))
    if legend:
        print(legend)
    print(f"machine: {machine()}; load {load()}")
