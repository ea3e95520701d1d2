"""Live progress of a workflow: one bar per work, counts by status, refreshed from the store."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from orchid.core.model import Work, Workflow
from orchid.core.states import TERMINAL_WORKFLOW, JobStatus, WorkflowStatus, WorkStatus

if TYPE_CHECKING:
    from orchid.client import Client
    from orchid.store.db import Database
    from orchid.wire import WorkflowDetail

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
    for w in latest_works(ws):
        n = sum(w.counts.values())
        finished = sum(
            w.counts.get(s, 0)
            for s in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.CANCELLED)
        )
        total, done = total + n, done + finished
        name = w.name if w.iteration == 0 else f"{w.name} #{w.iteration}"  # as loop.iteration
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
    """One row per work: a loop's works show their latest iteration (``#N`` numbered as
    `loop.iteration` counts, from 0; the first has no number)."""
    latest: dict[str, Work] = {}
    for w in ws:
        if w.name not in latest or w.iteration > latest[w.name].iteration:
            latest[w.name] = w
    return list(latest.values())


def snapshot(db: Database, workflow_id: int) -> tuple[Workflow, list[Work]]:
    from orchid.store import workflows, works  # not loaded by the remote views

    with db.engine.connect() as conn:
        return workflows.get(conn, workflow_id), works.list_for(conn, workflow_id)


Snapshot = Callable[[], tuple[Workflow, list[Work]]]


def follow(
    db: Database,
    workflow_id: int,
    console: Console,
    *,
    finished: Callable[[], bool] | None = None,
    interval: float = 0.3,
    as_json: bool = False,
) -> Workflow:
    """Redraw until the workflow ends (or ``finished()``); return its final state.

    On a terminal the table redraws in place; elsewhere (a log file, CI) a
    one-line summary is printed when something changed, at most every 5 s; with
    ``as_json``, a line of JSON (:func:`state_json`) whenever something changed.
    """
    return follow_with(
        lambda: snapshot(db, workflow_id),
        console,
        finished=finished,
        wait=lambda: time.sleep(interval),
        as_json=as_json,
    )


def state_json(wf: Workflow, ws: list[Work]) -> dict[str, object]:
    """A workflow and its works as `orchid status ID --json` prints them."""
    return {
        "id": wf.id,
        "name": wf.name,
        "status": wf.status,
        "message": wf.message,
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


def failures(db: Database, workflow_id: int, limit: int = 5) -> list[str]:
    """Lines naming the first failed jobs, their error, and how to see their logs."""
    from orchid.store import jobs

    with db.engine.connect() as conn:
        bad = jobs.list_for(conn, workflow_id, status=[JobStatus.FAILED], limit=limit)
    return [failure_line(j.id, j.work_name, j.name, j.attempt, j.error) for j in bad]


def failure_line(job_id: int, work: str, name: str, attempt: int, error: str | None) -> str:
    first = (error or "failed").splitlines()[0][:200]
    return (
        f"job {job_id} ({work}/{name}, attempt {attempt}): {first} — `orchid logs {job_id} --err`"
    )


# --- the same views over the REST API (``orchid watch`` with ORCHID_URL) ----------------------


def from_api(detail: WorkflowDetail) -> tuple[Workflow, list[Work]]:
    """The read models :func:`render` draws, from the API's description of a workflow."""
    wf = Workflow(
        id=detail.id,
        name=detail.name,
        owner=detail.owner,
        status=_known(WorkflowStatus, detail.status),
        message=detail.message,
        params=detail.params,
        created_at=detail.created_at,
        updated_at=detail.updated_at,
        finished_at=detail.finished_at,
        share_group=detail.share_group,
    )
    ws = [
        Work(
            id=w.id,
            workflow_id=detail.id,
            name=w.name,
            iteration=w.iteration,
            status=_known(WorkStatus, w.status),
            message=w.message,
            n_jobs=w.jobs,
            counts={_known(JobStatus, k): n for k, n in w.counts.items()},
            started_at=w.started_at,
            finished_at=w.finished_at,
        )
        for w in detail.works
    ]
    return wf, ws


S = TypeVar("S", WorkflowStatus, WorkStatus, JobStatus)


def _known(kind: type[S], value: str) -> S:
    try:
        return kind(value)
    except ValueError:
        from orchid.client.errors import ServerError

        raise ServerError(
            f"the server sent a {kind.__name__} {value!r} this client does not know: "
            "is the client older than the server?"
        ) from None


REMOTE_MIN_INTERVAL = 0.25  # seconds between reads of a busy workflow
REMOTE_MAX_INTERVAL = 5.0  # and of a quiet one (the elapsed time still moves)


def follow_remote(
    client: Client, workflow_id: int, console: Console, *, as_json: bool = False
) -> Workflow:
    """:func:`follow` over the API: the event stream says when something changed, then
    one request reads the workflow (many events in a burst cost one read)."""
    changed = threading.Event()
    failure: list[BaseException] = []

    def listen() -> None:
        try:
            for _ in client.events(workflow_id):
                changed.set()
        except BaseException as exc:  # handed to the main thread
            failure.append(exc)
        finally:
            changed.set()

    def wait() -> None:
        time.sleep(REMOTE_MIN_INTERVAL)  # let a burst of events collect
        changed.wait(REMOTE_MAX_INTERVAL)
        changed.clear()
        if failure:
            raise failure[0]

    fetch: Snapshot = lambda: from_api(client.workflow(workflow_id))  # noqa: E731
    threading.Thread(target=listen, name=f"events-{workflow_id}", daemon=True).start()
    return follow_with(fetch, console, wait=wait, as_json=as_json)


def remote_failures(client: Client, workflow_id: int, limit: int = 5) -> list[str]:
    """:func:`failures` over the API."""
    page = client.jobs(workflow_id, status=[JobStatus.FAILED], limit=limit)
    return [failure_line(j.id, j.work, j.name, j.attempt, j.error) for j in page.items]
