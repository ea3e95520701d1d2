"""The end of a collection's life in the carousel: deleting processed files, closing it
(which ends its work with the last one), letting go of it when its work ended first, and
following it again after a retry. See :mod:`orchid.store.feeds` for the states.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.carousel import fed_work_outcome
from orchid.core.states import FileStatus, WorkStatus
from orchid.store import works
from orchid.store.feeds import FEED_COLUMNS, OPEN, FeedRow, chunks, feed_row, reset_unstaged
from orchid.store.tables import collections, commands, files, workflows
from orchid.store.tables import works as works_table

F = FileStatus


def seal_finishing(conn: Connection) -> int:
    """Collections of workflows the user asked to finish take no new files."""
    finishing = sa.select(workflows.c.id).where(workflows.c.finishing)
    res = conn.execute(
        sa.update(collections)
        .where(
            collections.c.status == "staging",
            sa.not_(collections.c.sealed),
            collections.c.workflow_id.in_(finishing),
        )
        .values(sealed=True)
    )
    return max(res.rowcount, 0)


def processed(
    conn: Connection, collection_ids: Sequence[int], limit: int
) -> dict[int, list[tuple[int, str]]]:
    """Processed files still on disk, by collection: (id, name); one query for all."""
    out: dict[int, list[tuple[int, str]]] = {}
    if not collection_ids:
        return out
    rows = conn.execute(
        sa.select(files.c.id, files.c.name, files.c.collection_id)
        .where(files.c.collection_id.in_(collection_ids), files.c.status == F.PROCESSED)
        .limit(limit)
    )
    for r in rows:
        out.setdefault(int(r.collection_id), []).append((int(r.id), str(r.name)))
    return out


def mark_deleted(conn: Connection, ids: Sequence[int], now: float) -> None:
    for chunk in chunks(ids):
        conn.execute(
            sa.update(files)
            .where(files.c.id.in_(chunk), files.c.status == F.PROCESSED)
            .values(status=F.DELETED, url=None, updated_at=now)
        )


def complete(conn: Connection, rows: Sequence[FeedRow]) -> list[FeedRow]:
    """The collections to which nothing more will happen (processed files deleted too,
    where asked): one statement, an index probe per collection."""
    out: list[FeedRow] = []
    for delete_after in (False, True):
        group = {r.id: r for r in rows if r.sealed and r.feed.delete_after == delete_after}
        if not group:
            continue
        busy = [F.NEW, F.STAGING, F.AVAILABLE, F.PROCESSING] + ([F.PROCESSED] * delete_after)
        pending = (
            sa.select(files.c.id)
            .where(files.c.collection_id == collections.c.id, files.c.status.in_(busy))
            .exists()
        )
        done = conn.execute(
            sa.select(collections.c.id).where(collections.c.id.in_(list(group)), sa.not_(pending))
        ).scalars()
        out.extend(group[int(i)] for i in done)
    return out


def close(
    conn: Connection, row: FeedRow, now: float, message: str = ""
) -> tuple[int, WorkStatus] | None:
    """Close a collection and let go of its work; returns (work, status) if that ended it."""
    res = conn.execute(
        sa.update(collections)
        .where(collections.c.id == row.id, collections.c.status.in_(OPEN))
        .values(status="closed", closed_at=now, message=message, lease_owner=None, lease_until=None)
    )
    if res.rowcount != 1:
        return None
    if not works.add_remaining(conn, {row.work_id: -1}):
        return None
    status = fed_work_outcome(works.counts(conn, row.work_id), unstaged(conn, row.work_id))
    if not works.finish(conn, row.work_id, status, _outcome_message(conn, row.work_id), now):
        return None
    return row.work_id, status


def failed_jobs(conn: Connection, row: FeedRow) -> bool:
    """Whether files of the collection failed because their job failed."""
    found = conn.execute(
        sa.select(files.c.id)
        .where(
            files.c.collection_id == row.id, files.c.status == F.FAILED, files.c.job_id.is_not(None)
        )
        .limit(1)
    ).first()
    return found is not None


def unstaged(conn: Connection, work_id: int) -> int:
    """Files of a work's collections that never reached disk (given up after retries)."""
    mine = sa.select(collections.c.id).where(collections.c.work_id == work_id)
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(files)
            .where(
                files.c.collection_id.in_(mine),
                files.c.status == F.FAILED,
                files.c.job_id.is_(None),
            )
        ).scalar_one()
    )


def _outcome_message(conn: Connection, work_id: int) -> str:
    lost = unstaged(conn, work_id)
    broken = conn.execute(
        sa.select(collections.c.message).where(
            collections.c.work_id == work_id, collections.c.message != ""
        )
    ).scalars()
    parts = [str(m) for m in broken]
    if lost:
        parts.insert(0, f"{lost} files could not be staged")
    return "; ".join(parts)


def abandoned(conn: Connection) -> list[FeedRow]:
    """Open collections whose work ended without them (aborted, failed): to let go of."""
    rows = conn.execute(
        sa.select(*FEED_COLUMNS)
        .join(works_table, works_table.c.id == collections.c.work_id)
        .where(
            collections.c.status.in_(OPEN),
            works_table.c.status.not_in([WorkStatus.RUNNING, WorkStatus.READY, WorkStatus.WAITING]),
        )
    )
    return [feed_row(r) for r in rows]


def give_up(conn: Connection, row: FeedRow, now: float, message: str) -> None:
    """Close without counting down the work (it has ended already, or fails with this)."""
    conn.execute(
        sa.update(collections)
        .where(collections.c.id == row.id)
        .values(status="closed", closed_at=now, message=message, lease_owner=None, lease_until=None)
    )


def retried(conn: Connection) -> list[FeedRow]:
    """Closed collections of running works whose workflow was retried after they closed,
    and that have files left to stage again or to process again."""
    retry = (
        sa.select(commands.c.id)
        .where(
            commands.c.workflow_id == collections.c.workflow_id,
            commands.c.kind == "retry",
            commands.c.status == "applied",
            commands.c.applied_at >= collections.c.closed_at,
        )
        .exists()
    )
    redo = (
        sa.select(files.c.id)
        .where(
            files.c.collection_id == collections.c.id, files.c.status.in_([F.FAILED, F.PROCESSING])
        )
        .exists()
    )
    rows = conn.execute(
        sa.select(*FEED_COLUMNS)
        .join(works_table, works_table.c.id == collections.c.work_id)
        .where(
            collections.c.status == "closed",
            works_table.c.status == WorkStatus.RUNNING,
            retry,
            redo,
        )
    )
    return [feed_row(r) for r in rows]


def reopen(conn: Connection, row: FeedRow) -> None:
    """A retried collection is followed again, holding its work open, its failures restaged."""
    conn.execute(
        sa.update(collections)
        .where(collections.c.id == row.id, collections.c.status == "closed")
        .values(status="new", closed_at=None, message="", next_poll_at=0)
    )
    works.add_remaining(conn, {row.work_id: 1})
    reset_unstaged(conn, [row.id])
