"""`orchid archive` and `orchid restore`: retention by hand, on the database directly.

The agents archive due workflows by themselves once ``[retention] archive_after`` is set
(docs/operations.md, Retention); these commands are the operator's: archive now (or see
what would be, ``--dry-run``), and bring an archived workflow back.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from orchid.cli.common import DbOpt, _age, _open_existing, _settings, app, console
from orchid.errors import InvalidInput
from orchid.settings import duration

if TYPE_CHECKING:
    from orchid.engine.archivist import Archiver, Outcome
    from orchid.store.archive import Entry


@app.command("archive")
def archive_cmd(
    workflow_ids: Annotated[
        list[int] | None, typer.Argument(help="these ended workflows (default: those due)")
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(help="due: ended this long ago (3600, 12h, 30d; default: archive_after)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list them, change nothing")] = False,
    limit: Annotated[int, typer.Option(min=1, help="at most this many workflows")] = 1000,
    share: Annotated[
        float | None,
        typer.Option(
            min=0.01, max=1.0, help="of the time, at most this much archiving (default: share)"
        ),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Archive ended workflows into the archive folder now (their summary stays).

    It works in short batches and pauses between them so that it takes at most ``share``
    of the time (``[retention] share``, 0.05; ``--share 1``: as fast as it can)."""
    from orchid.engine.archivist import Archiver, Policy
    from orchid.store import archive as rows_store

    settings = _settings(db=db)
    database = _open_existing(settings)
    archiver = Archiver(database, Policy.from_settings(settings))
    if workflow_ids:
        with database.engine.connect() as conn:
            entries = [rows_store.entry(conn, i) for i in workflow_ids[:limit]]
    else:
        after = duration(older_than) if older_than is not None else settings.archive_after
        if after is None:
            raise InvalidInput(
                "which workflows? name their ids, say --older-than (30d), or set "
                "[retention] archive_after in the settings"
            )
        entries = archiver.due(after, limit)
    if dry_run:
        _show(entries, "would be archived")
        return
    done = 0
    for entry in entries:
        try:
            out = _run(archiver, entry.id, settings.retention_share if share is None else share)
        except InvalidInput as exc:
            if workflow_ids:
                raise
            console.print(f"workflow {entry.id} skipped: {exc}")  # it changed meanwhile
            continue
        done += 1
        kept = sum(out.rows.values())
        console.print(f"workflow {entry.id} archived: {kept:,} rows into {out.uri}")
    console.print(f"{done} workflow(s) archived" if done else "nothing to archive")


def _run(archiver: Archiver, workflow_id: int, share: float) -> Outcome:
    """Archive one workflow, pausing after each batch so that it takes at most ``share``
    of the time: agents that run meanwhile get the database (and the CPU) back."""
    from orchid.engine.archivist import Outcome
    from orchid.store import archive as rows_store

    out = Outcome(workflow_id)
    steps = archiver.steps(workflow_id, out)
    try:
        while True:
            t0 = time.monotonic()
            if next(steps, StopIteration) is StopIteration:
                return out
            time.sleep((time.monotonic() - t0) * (1 / share - 1))
    except BaseException:  # interrupted: the next run goes on at once, not after the lease
        steps.close()
        with archiver.db.begin() as conn:
            rows_store.release(conn, archiver.owner)
        raise


def _show(entries: list[Entry], what: str) -> None:
    table = Table("id", "name", "owner", "status", "ended", "state")
    now = time.time()
    for e in entries:
        ended = f"{_age(now - e.finished_at)} ago" if e.finished_at else ""
        table.add_row(str(e.id), e.name, e.owner, e.status, ended, e.archive_state or "live")
    console.print(table if entries else "nothing to archive")
    console.print(f"{len(entries)} workflow(s) {what} (dry run: nothing changed)")


@app.command("restore")
def restore_cmd(
    workflow_id: Annotated[int, typer.Argument(help="an archived workflow")],
    db: DbOpt = None,
) -> None:
    """Put an archived workflow's rows and logs back from its archive file."""
    from orchid.engine.archivist import Archiver, Policy

    settings = _settings(db=db)
    database = _open_existing(settings)
    out = Archiver(database, Policy.from_settings(settings)).restore(workflow_id)
    rows = sum(out.rows.values())
    console.print(f"workflow {workflow_id} restored: {rows:,} rows, {out.logs} log files")
