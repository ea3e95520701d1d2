"""Formatting and small decisions for the pages: pure functions of values, tested alone."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from orchid.graph.render import BAR_ORDER, PALETTE

ACTION_HELP = {
    "abort": "cancel it: nothing new starts, running jobs are stopped",
    "suspend": "pause it: running jobs finish, nothing new starts until resume",
    "resume": "carry on",
    "retry": "run the failed jobs again (and what was skipped because of them)",
    "finish": "start no new work; what runs now runs to its end",
}
JOB_STATUSES = (
    "waiting",
    "ready",
    "submitted",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "skipped",
)
WORKFLOW_STATUSES = (
    "pending",
    "running",
    "suspended",
    "succeeded",
    "failed",
    "partial",
    "cancelled",
)
TERMINAL_JOBS = ("succeeded", "failed", "cancelled", "skipped")


def actions(status: str, finishing: bool, failed_jobs: int) -> list[str]:
    """The commands worth offering for a workflow in ``status`` (the clerk accepts each)."""
    if status == "pending":
        return ["abort"]
    if status == "running":
        out = ["retry"] if failed_jobs else []
        out += ["suspend"] + ([] if finishing else ["finish"]) + ["abort"]
        return out
    if status == "suspended":
        return ["resume", "abort"]
    if status in ("failed", "partial"):
        return ["retry"]
    return []


def segments(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Parts of a progress bar: status, count, percent (of all jobs), colour."""
    total = sum(counts.values())
    if not total:
        return []
    return [
        {"status": s, "n": counts[s], "pct": 100.0 * counts[s] / total, "colour": PALETTE[s][0]}
        for s in BAR_ORDER
        if counts.get(s) and s in PALETTE
    ]


def done_pct(counts: Mapping[str, int]) -> float:
    total = sum(counts.values())
    return 100.0 * sum(counts.get(s, 0) for s in TERMINAL_JOBS) / total if total else 0.0


def size(n: float) -> str:
    """Bytes for people (powers of 1000, as storage systems count)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def age(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def duration(start: float | None, end: float | None, now: float | None = None) -> str:
    if start is None:
        return ""
    stop = end if end is not None else (now if now is not None else time.time())
    s = max(stop - start, 0.0)
    if s < 10:
        return f"{s:.2f}s"
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s // 60:.0f}m{s % 60:02.0f}s"
    return f"{s // 3600:.0f}h{(s % 3600) // 60:02.0f}m"


def clock(ts: float | None) -> str:
    """A UTC time stamp, to the second."""
    if ts is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"


def pretty(value: Any, limit: int = 20_000) -> str:
    """JSON for people, cut at ``limit`` characters."""
    text = json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    return (
        text
        if len(text) <= limit
        else text[:limit] + f"\n… ({len(text) - limit:,} more characters)"
    )


def compact(value: Any, limit: int = 120) -> str:
    text = json.dumps(
        value, sort_keys=True, default=str, ensure_ascii=False, separators=(", ", ": ")
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


def page_numbers(offset: int, limit: int, total: int) -> dict[str, Any]:
    """Where an offset page stands: 1-based first/last shown, previous/next offsets."""
    return {
        "first": offset + 1 if total else 0,
        "last": min(offset + limit, total),
        "total": total,
        "prev": max(offset - limit, 0) if offset > 0 else None,
        "next": offset + limit if offset + limit < total else None,
    }


def event_text(kind: str, data: Mapping[str, Any], work_names: Mapping[int, str]) -> str:
    """One line of the timeline, in words."""
    work = work_names.get(int(data.get("work_id", 0) or 0))
    head, _, tail = kind.partition(".")
    if head == "work" and work:
        extra = f" with {data['jobs']:,} jobs" if "jobs" in data else ""
        return f"work {work} {tail}{extra}"
    if head == "workflow":
        msg = data.get("message") or ""
        if tail == "submitted":
            return f"submitted with {data.get('jobs', 0):,} listed jobs"
        return f"workflow {tail}" + (f": {msg}" if msg else "")
    if head == "command":
        if tail == "rejected":
            return f"command {data.get('command', '')} rejected: {data.get('message', '')}"
        return f"{tail} applied"
    if head == "loop":
        status = data.get("status", "")
        return f"loop {data.get('loop')} {status} (iteration {data.get('iteration', 0)})"
    return kind


def statuses_of(items: Sequence[str], allowed: Sequence[str]) -> list[str]:
    return [s for s in items if s in allowed]


def number(value: Any) -> str:
    """A parameter value for a table: floats to 6 significant digits, the rest as JSON."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value if len(value) <= 30 else value[:29] + "…"
    return compact(value, 30)
