"""Live progress of a workflow: one bar per work, counts by status, refreshed through a
:class:`~orchid.backend.base.Backend` (the database here, or a server)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from orchid.backend.base import Backend
from orchid.core.model import Work, Workflow
from orchid.core.states import TERMINAL_WORKFLOW, JobStatus

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
        ("  archived" if wf.archived_at is not None else "", "magenta"),
    )
    table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
    for col in ("work", "status", "progress", "done", "jobs"):
        table.add_column(col)
    total = done = 0
    for w in latest_works(ws):
        n = sum(w.counts.values())
        finished = sum(
            w.counts.get(s, 0)
            for s in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.CANCELLED)
        )
        total, done = total + n, done + finished
        name = w.name if w.iteration == 0 else f"{w.name} #{w.iteration}"  # its row number
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


def latest_works(ws: list[Work]) -> list[Work]:
    """One row per work: a loop's works show their latest iteration (``#N``: the work's
    row number, from 0, the first with no number; ``loop.iteration`` in a loop of its own,
    counting on across the outer iterations inside a loop inside a loop)."""
    latest: dict[str, Work] = {}
    for w in ws:
        if w.name not in latest or w.iteration > latest[w.name].iteration:
            latest[w.name] = w
    return list(latest.values())


Snapshot = Callable[[], tuple[Workflow, list[Work]]]


def follow(
    backend: Backend,
    workflow_id: int,
    console: Console,
    *,
    finished: Callable[[], bool] | None = None,
    as_json: bool = False,
) -> Workflow:
    """Redraw until the workflow ends (or ``finished()``); return its final state.

    On a terminal the table redraws in place; elsewhere (a log file, CI) a
    one-line summary is printed when something changed, at most every 5 s; with
    ``as_json``, a line of JSON (:func:`state_json`) whenever something changed.
    The backend says when to look again (:meth:`~orchid.backend.base.Backend.watcher`).
    """
    return follow_with(
        lambda: backend.snapshot(workflow_id),
        console,
        finished=finished,
        wait=backend.watcher(workflow_id),
        as_json=as_json,
    )


def state_json(wf: Workflow, ws: list[Work]) -> dict[str, object]:
    """A workflow and its works as `orchid status ID --json` prints them."""
    return {
        "id": wf.id,
        "name": wf.name,
        "status": wf.status,
        "message": wf.message,
        "archived_at": wf.archived_at,
        "works": [
            {
                "name": w.name,
                "iteration": w.iteration,
                "status": w.status,
                "message": w.message,
                "counts": {str(k): v for k, v in w.counts.items()},
            }
            for w in ws
        ],
    }


def follow_with(
    fetch: Snapshot,
    console: Console,
    *,
    finished: Callable[[], bool] | None = None,
    wait: Callable[[], object],
    as_json: bool = False,
) -> Workflow:
    """:func:`follow` over any source of snapshots: ``fetch()`` reads the workflow and its
    works, ``wait()`` returns when it is time to read them again."""
    if as_json:
        return _follow_json(fetch, finished, wait)
    if not console.is_terminal:
        return _follow_plain(fetch, console, finished, wait)
    wf, ws = fetch()
    with Live(
        render(wf, ws, time.time()), console=console, refresh_per_second=8, transient=False
    ) as live:
        while wf.status not in TERMINAL_WORKFLOW and not (finished and finished()):
            wait()
            wf, ws = fetch()
            live.update(render(wf, ws, time.time()))
        wf, ws = fetch()
        live.update(render(wf, ws, time.time()))
    return wf


PLAIN_EVERY = 5.0


def summary_line(wf: Workflow, ws: list[Work], now: float) -> str:
    """``12:00:05 workflow 3 rubin running 1,040/2,460 jobs · isr succeeded 800/800 · ...``."""
    parts = []
    total = done = 0
    for w in latest_works(ws):
        n = sum(w.counts.values())
        finished = sum(w.counts.get(s, 0) for s in FINISHED)
        total, done = total + n, done + finished
        parts.append(f"{w.name} {w.status} {finished:,}/{n:,}")
    clock = time.strftime("%H:%M:%S", time.localtime(now))
    head = f"{clock} workflow {wf.id} {wf.name} {wf.status} {done:,}/{total:,} jobs"
    return " · ".join([head, *parts])


def _follow_plain(
    fetch: Snapshot,
    console: Console,
    finished: Callable[[], bool] | None,
    wait: Callable[[], object],
) -> Workflow:
    last, last_at = "", 0.0
    while True:
        wf, ws = fetch()
        ended = wf.status in TERMINAL_WORKFLOW or bool(finished and finished())
        now = time.time()
        line = summary_line(wf, ws, now)
        if ended or (line[9:] != last and now - last_at >= PLAIN_EVERY):
            last, last_at = line[9:], now
            if not ended:
                console.print(line, highlight=False, soft_wrap=True)
        if ended:
            wf, ws = fetch()
            console.print(render(wf, ws, now))
            return wf
        wait()


def _follow_json(
    fetch: Snapshot, finished: Callable[[], bool] | None, wait: Callable[[], object]
) -> Workflow:
    """One line of JSON on stdout each time the workflow or a work changed; the last line is
    the final state."""
    last = ""
    while True:
        wf, ws = fetch()
        ended = wf.status in TERMINAL_WORKFLOW or bool(finished and finished())
        if ended:
            wf, ws = fetch()
        line = json.dumps(state_json(wf, ws))
        if line != last:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            last = line
        if ended:
            return wf
        wait()


def failures(backend: Backend, workflow_id: int, limit: int = 5) -> list[str]:
    """Lines naming the first failed jobs, their error, and how to see their logs."""
    bad = backend.failed_jobs(workflow_id, limit)
    return [failure_line(j.id, j.work, j.name, j.attempt, j.error) for j in bad]


def failure_line(job_id: int, work: str, name: str, attempt: int, error: str | None) -> str:
    first = (error or "failed").splitlines()[0][:200]
    return (
        f"job {job_id} ({work}/{name}, attempt {attempt}): {first} — `orchid logs {job_id} --err`"
    )
