"""Live progress of a workflow: one bar per work, counts by status, refreshed from the store."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from orchid.core.model import Work, Workflow
from orchid.core.states import TERMINAL_WORKFLOW, JobStatus
from orchid.store import jobs, workflows, works
from orchid.store.db import Database

COLOURS = {
    "pending": "white",
    "waiting": "white",
    "ready": "cyan",
    "submitted": "cyan",
    "running": "blue",
    "suspended": "yellow",
    "succeeded": "green",
    "failed": "red",
    "partial": "yellow",
    "cancelled": "magenta",
    "skipped": "bright_black",
}
SYMBOLS = [
    (JobStatus.SUCCEEDED, "✓", "green"),
    (JobStatus.FAILED, "✗", "red"),
    (JobStatus.RUNNING, "▶", "blue"),
    (JobStatus.SUBMITTED, "▷", "cyan"),
    (JobStatus.READY, "●", "cyan"),
    (JobStatus.WAITING, "…", "white"),
    (JobStatus.SKIPPED, "↷", "bright_black"),
    (JobStatus.CANCELLED, "⊘", "magenta"),
]


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.CANCELLED)


def status_text(status: str) -> Text:
    return Text(status, style=COLOURS.get(status, "white"))


def counts_text(work: Work) -> Text:
    out = Text()
    for status, symbol, style in SYMBOLS:
        n = work.counts.get(status, 0)
        if n:
            out.append(f"{symbol}{n:,} ", style=style)
    return out


def render(wf: Workflow, ws: list[Work], now: float) -> Group:
    elapsed = (wf.finished_at or now) - wf.created_at
    head = Text.assemble(
        (f"workflow {wf.id} ", "bold"),
        (wf.name, "bold cyan"),
        "  ",
        status_text(wf.status),
        f"  {elapsed:,.1f}s",
    )
    table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
    for col in ("work", "status", "progress", "done", "jobs"):
        table.add_column(col)
    total = done = 0
    for w in _latest(ws):
        n = sum(w.counts.values())
        finished = sum(
            w.counts.get(s, 0)
            for s in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.CANCELLED)
        )
        total, done = total + n, done + finished
        name = w.name if w.iteration == 0 else f"{w.name} #{w.iteration + 1}"
        bar = ProgressBar(
            total=max(n, 1),
            completed=finished if n else 0,
            width=30,
            complete_style=COLOURS.get(w.status, "blue"),
        )
        table.add_row(name, status_text(w.status), bar, f"{finished:,}/{n:,}", counts_text(w))
    parts: list[Text | Table] = [head, table]
    parts.append(Text(f"jobs {done:,}/{total:,} finished", style="dim"))
    if wf.message:
        parts.append(Text(wf.message, style=COLOURS.get(wf.status, "white")))
    return Group(*parts)


def _latest(ws: list[Work]) -> list[Work]:
    """One row per work: a loop's works show their latest iteration (numbered from 1)."""
    latest: dict[str, Work] = {}
    for w in ws:
        if w.name not in latest or w.iteration > latest[w.name].iteration:
            latest[w.name] = w
    return list(latest.values())


def snapshot(db: Database, workflow_id: int) -> tuple[Workflow, list[Work]]:
    with db.engine.connect() as conn:
        return workflows.get(conn, workflow_id), works.list_for(conn, workflow_id)


def follow(
    db: Database,
    workflow_id: int,
    console: Console,
    *,
    finished: Callable[[], bool] | None = None,
    interval: float = 0.3,
) -> Workflow:
    """Redraw until the workflow ends (or ``finished()``); return its final state.

    On a terminal the table redraws in place; elsewhere (a log file, CI) a
    one-line summary is printed when something changed, at most every 5 s.
    """
    if not console.is_terminal:
        return _follow_plain(db, workflow_id, console, finished, interval)
    wf, ws = snapshot(db, workflow_id)
    with Live(
        render(wf, ws, time.time()), console=console, refresh_per_second=8, transient=False
    ) as live:
        while wf.status not in TERMINAL_WORKFLOW and not (finished and finished()):
            time.sleep(interval)
            wf, ws = snapshot(db, workflow_id)
            live.update(render(wf, ws, time.time()))
        wf, ws = snapshot(db, workflow_id)
        live.update(render(wf, ws, time.time()))
    return wf


PLAIN_EVERY = 5.0


def summary_line(wf: Workflow, ws: list[Work], now: float) -> str:
    """``12:00:05 workflow 3 rubin running 1,040/2,460 jobs · isr succeeded 800/800 · ...``."""
    parts = []
    total = done = 0
    for w in _latest(ws):
        n = sum(w.counts.values())
        finished = sum(w.counts.get(s, 0) for s in FINISHED)
        total, done = total + n, done + finished
        parts.append(f"{w.name} {w.status} {finished:,}/{n:,}")
    clock = time.strftime("%H:%M:%S", time.localtime(now))
    head = f"{clock} workflow {wf.id} {wf.name} {wf.status} {done:,}/{total:,} jobs"
    return " · ".join([head, *parts])


def _follow_plain(
    db: Database,
    workflow_id: int,
    console: Console,
    finished: Callable[[], bool] | None,
    interval: float,
) -> Workflow:
    last, last_at = "", 0.0
    while True:
        wf, ws = snapshot(db, workflow_id)
        ended = wf.status in TERMINAL_WORKFLOW or bool(finished and finished())
        now = time.time()
        line = summary_line(wf, ws, now)
        if ended or (line[9:] != last and now - last_at >= PLAIN_EVERY):
            last, last_at = line[9:], now
            if not ended:
                console.print(line, highlight=False, soft_wrap=True)
        if ended:
            wf, ws = snapshot(db, workflow_id)
            console.print(render(wf, ws, now))
            return wf
        time.sleep(interval)


def failures(db: Database, workflow_id: int, limit: int = 5) -> list[str]:
    """Lines naming the first failed jobs, their error, and how to see their logs."""
    with db.engine.connect() as conn:
        bad = jobs.list_for(conn, workflow_id, status=[JobStatus.FAILED], limit=limit)
    out = []
    for j in bad:
        error = (j.error or "failed").splitlines()[0][:200]
        out.append(
            f"job {j.id} ({j.work_name}/{j.name}, attempt {j.attempt}): {error} "
            f"— `orchid logs {j.id} --err`"
        )
    return out
