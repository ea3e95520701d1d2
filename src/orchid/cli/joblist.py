"""`orchid jobs WF`: a workflow's jobs with their ids (for `orchid logs`), status, attempts,
times and exit codes; from a database here or through a server."""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from orchid.backend.base import JobLine
from orchid.cli.common import (
    DbOpt,
    UrlOpt,
    WorkflowId,
    _age,
    _backend,
    app,
    console,
    err,
)
from orchid.cli.progress import status_text
from orchid.core.states import JobStatus
from orchid.errors import InvalidInput

if TYPE_CHECKING:
    from orchid.backend.base import Backend

PAGE = 1000  # rows read at once (the API's largest page)


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
    with _backend(url, db) as backend:
        rows = list(itertools.islice(_rows(backend, workflow_id, work, wanted), limit + 1))
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


def _rows(
    backend: Backend, workflow_id: int, work: str | None, status: Sequence[str]
) -> Iterator[JobLine]:
    chosen = _work_ids(workflow_id, backend.work_list(workflow_id), work)
    ids: list[int | None] = list(chosen) if work is not None else [None]

    def pages(work_id: int | None) -> Iterator[JobLine]:
        for wid, row in backend.job_lines(workflow_id, status=status, work_id=work_id, page=PAGE):
            name, iteration = chosen.get(wid or 0, (row.work, 0))
            yield replace(row, work=name, iteration=iteration)

    # the jobs of each iteration of a work, merged into one id order
    yield from heapq.merge(*(pages(w) for w in ids), key=lambda r: r.id)


def _table(workflow_id: int, rows: Sequence[JobLine], work: str | None, status: list[str]) -> None:
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
