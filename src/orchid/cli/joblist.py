"""`orchid jobs WF`: a workflow's jobs with their ids (for `orchid logs`), status, attempts,
times and exit codes; from a database here or through a server."""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from orchid.cli.common import (
    DbOpt,
    UrlOpt,
    WorkflowId,
    _age,
    _open_existing,
    _remote,
    _settings,
    app,
    console,
    err,
)
from orchid.cli.progress import status_text
from orchid.core.states import JobStatus
from orchid.errors import InvalidInput

if TYPE_CHECKING:
    from orchid.client import Client
    from orchid.core.model import Job
    from orchid.store.db import Database
    from orchid.wire import JobOut

PAGE = 1000  # rows read at once (the API's largest page)


@dataclass(frozen=True)
class JobRow:
    """One job as `orchid jobs` shows it (`--json` prints these fields)."""

    id: int
    work: str
    iteration: int  # of the work's loop (`loop.iteration`); 0 outside loops
    name: str
    status: str
    attempt: int
    max_attempts: int
    exit_code: int | None
    ready_at: float | None
    started_at: float | None
    finished_at: float | None
    error: str | None

    @classmethod
    def of(cls, job: Job | JobOut, work: str, iteration: int) -> JobRow:
        """The row of a job read from the database or through the API (same field names)."""
        return cls(
            job.id,
            work,
            iteration,
            job.name,
            str(job.status),
            job.attempt,
            job.max_attempts,
            job.exit_code,
            job.ready_at,
            job.started_at,
            job.finished_at,
            job.error,
        )


@app.command("jobs")
def jobs_cmd(
    workflow_id: WorkflowId,
    work: Annotated[
        str | None, typer.Option("--work", help="of this work only (every loop iteration)")
    ] = None,
    status: Annotated[
        list[JobStatus] | None, typer.Option("--status", help="of this status (repeatable)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000_000, help="show at most this many")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    db: DbOpt = None,
    url: UrlOpt = None,
) -> None:
    """A workflow's jobs in id order: ids (for `orchid logs ID`), status, attempts, times,
    exit codes and errors."""
    wanted = [str(s) for s in status or []]
    client = _remote(url, db)
    if client is not None:
        with client:
            rows = list(
                itertools.islice(_remote_rows(client, workflow_id, work, wanted), limit + 1)
            )
    else:
        database = _open_existing(_settings(db=db))
        rows = list(itertools.islice(_local_rows(database, workflow_id, work, wanted), limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    if as_json:
        console.print_json(data=[asdict(r) for r in rows])
    else:
        _table(workflow_id, rows, work, wanted)
    if more:
        err.print(
            f"the first {limit:,} jobs are shown: --limit N shows more, "
            "--status and --work choose some",
            highlight=False,
        )


def _work_ids(
    workflow_id: int, rows: Iterable[tuple[int, str, int]], work: str | None
) -> dict[int, tuple[str, int]]:
    """Work id → (name, iteration) of the works whose jobs are listed."""
    found = {wid: (name, it) for wid, name, it in rows}
    if work is None:
        return found
    chosen = {wid: v for wid, v in found.items() if v[0] == work}
    if not chosen:
        names = ", ".join(dict.fromkeys(name for name, _ in found.values())) or "none"
        raise InvalidInput(f"workflow {workflow_id} has no work {work!r}; its works: {names}")
    return chosen


def _local_rows(
    database: Database, workflow_id: int, work: str | None, status: Sequence[str]
) -> Iterator[JobRow]:
    from orchid.store import jobs, workflows, works  # the store: only for a local database

    with database.engine.connect() as conn:
        workflows.get(conn, workflow_id)  # NotFound: says which workflows exist
        chosen = _work_ids(
            workflow_id,
            ((w.id, w.name, w.iteration) for w in works.list_for(conn, workflow_id, False)),
            work,
        )
    ids: list[int | None] = list(chosen) if work is not None else [None]

    def pages(work_id: int | None) -> Iterator[JobRow]:
        after = 0
        while True:
            with database.engine.connect() as conn:
                page = jobs.list_for(
                    conn, workflow_id, status=status, work_id=work_id, after_id=after, limit=PAGE
                )
            for j in page:
                name, iteration = chosen.get(j.work_id, (j.work_name, 0))
                yield JobRow.of(j, name, iteration)
            if len(page) < PAGE:
                return
            after = page[-1].id

    # the jobs of each iteration of a work, merged into one id order
    yield from heapq.merge(*(pages(w) for w in ids), key=lambda r: r.id)


def _remote_rows(
    client: Client, workflow_id: int, work: str | None, status: Sequence[str]
) -> Iterator[JobRow]:
    chosen = _work_ids(
        workflow_id, ((w.id, w.name, w.iteration) for w in client.works(workflow_id)), work
    )
    ids: list[int | None] = list(chosen) if work is not None else [None]

    def pages(work_id: int | None) -> Iterator[JobRow]:
        for j in client.iter_jobs(workflow_id, status=status, work_id=work_id, page_size=PAGE):
            name, iteration = chosen.get(j.work_id or 0, (j.work, 0))
            yield JobRow.of(j, name, iteration)

    yield from heapq.merge(*(pages(w) for w in ids), key=lambda r: r.id)


def _table(workflow_id: int, rows: Sequence[JobRow], work: str | None, status: list[str]) -> None:
    if not rows:
        which = " ".join(
            [*(f"--status {s}" for s in status), *([f"--work {work}"] if work else [])]
        )
        console.print(f"workflow {workflow_id} has no jobs" + (f" ({which})" if which else ""))
        return
    now = time.time()
    table = Table("id", "work", "job", "status", "attempt", "started", "took", "exit", "error")
    for r in rows:
        started = f"{_age(now - r.started_at)} ago" if r.started_at is not None else ""
        took = ""
        if r.started_at is not None:
            took = _took((r.finished_at or now) - r.started_at)
        table.add_row(
            str(r.id),
            r.work if r.iteration == 0 else f"{r.work} #{r.iteration}",
            r.name,
            status_text(r.status),
            f"{r.attempt}/{r.max_attempts}",
            started,
            took,
            "" if r.exit_code is None else str(r.exit_code),
            (r.error or "").splitlines()[0][:60] if r.error else "",
        )
    console.print(table)
    console.print("[dim]`orchid logs ID` prints a job's output (--err: its stderr)[/]")


def _took(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else _age(seconds)
