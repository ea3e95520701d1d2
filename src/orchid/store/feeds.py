"""Collections that feed works (the data carousel): opening, polling, deleting, closing.

A work with an ``input`` owns one collection row per collection it reads. The row
carries how the work uses it (:class:`~orchid.core.carousel.Feed`, in ``spec``) and the
transporter's state: ``new`` (files not listed yet) → ``staging`` (listed, staging
requested, changes followed) → ``closed`` (every file processed or given up;
``message`` says why when it is not complete). While a collection is not closed it
holds one unit of its work's ``remaining`` count, so the work cannot end while files
may still come; the transporter ends the work when the last collection closes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.carousel import Feed, after_stage_failure
from orchid.core.model import FileInfo
from orchid.core.states import FileStatus
from orchid.store import catalog, claims
from orchid.store.catalog import NewFile
from orchid.store.tables import collections, files

F = FileStatus
OPEN = ("new", "staging")
CHUNK = 1000


@dataclass(frozen=True)
class FeedRow:
    """A collection as the transporter works on it."""

    id: int
    workflow_id: int
    work_id: int
    scope: str
    name: str
    manager: str
    status: str
    cursor: str | None
    feed: Feed
    sealed: bool = False

    @property
    def key(self) -> str:
        """The collection as its data manager names it."""
        return f"{self.scope}:{self.name}"


def feed_row(r: Any) -> FeedRow:
    return FeedRow(
        id=int(r.id),
        workflow_id=int(r.workflow_id),
        work_id=int(r.work_id),
        scope=r.scope,
        name=r.name,
        manager=r.manager,
        status=r.status,
        cursor=r.cursor,
        feed=Feed.from_json(r.spec),
        sealed=bool(r.sealed),
    )


FEED_COLUMNS = (
    collections.c.id,
    collections.c.workflow_id,
    collections.c.work_id,
    collections.c.scope,
    collections.c.name,
    collections.c.manager,
    collections.c.status,
    collections.c.cursor,
    collections.c.spec,
    collections.c.sealed,
)


def chunks(items: Iterable[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


# --- the transformer ---------------------------------------------------------------------


def open_feeds(
    conn: Connection,
    workflow_id: int,
    work_id: int,
    manager: str,
    names: Sequence[tuple[str, str]],
    feed: Feed,
    now: float,
) -> int:
    """A fed work starts: one collection row per (scope, name), each holding the work open.

    A work that starts again (a retry of a work that never got a job) reuses its rows.
    Returns how many collections hold the work open."""
    existing = conn.execute(
        sa.select(collections.c.id).where(collections.c.work_id == work_id)
    ).scalars()
    reopened = [int(i) for i in existing]
    if reopened:
        conn.execute(
            sa.update(collections)
            .where(collections.c.id.in_(reopened))
            .values(status="new", closed_at=None, message="", next_poll_at=0)
        )
        reset_unstaged(conn, reopened)
        return len(reopened)
    for scope, name in names:
        cid = catalog.add_collection(
            conn,
            workflow_id,
            scope=scope,
            name=name,
            manager=manager,
            now=now,
            status="new",
            work_id=work_id,
        )
        conn.execute(
            sa.update(collections).where(collections.c.id == cid).values(spec=feed.to_json())
        )
    return len(names)


def reset_unstaged(conn: Connection, collection_ids: Sequence[int]) -> None:
    """Retry: files that could not be staged get fresh attempts (listing restages them)."""
    conn.execute(
        sa.update(files)
        .where(
            files.c.collection_id.in_(collection_ids),
            files.c.status == F.FAILED,
            files.c.job_id.is_(None),
        )
        .values(status=F.STAGING, attempt=0, error=None)
    )


# --- the transporter: following collections ---------------------------------------------


def claim_due(
    conn: Connection, owner: str, managers: Iterable[str], now: float, lease: float, limit: int
) -> list[FeedRow]:
    """Lease open collections of these data managers that are due for a look."""
    rows = claims.claim(
        conn,
        collections,
        [
            collections.c.status.in_(OPEN),
            collections.c.next_poll_at <= now,
            collections.c.manager.in_(sorted(managers)),
        ],
        owner=owner,
        now=now,
        lease=lease,
        limit=limit,
        returning=FEED_COLUMNS[1:],
    )
    return [feed_row(r) for r in rows]


def register(conn: Connection, row: FeedRow, listed: Sequence[FileInfo], now: float) -> list[str]:
    """Record the files a collection was listed with; return those to stage."""
    catalog.add_files(
        conn,
        row.id,
        (
            NewFile(f.name, f.size, F.AVAILABLE if f.status == F.AVAILABLE else F.NEW, f.url)
            for f in listed
        ),
        now=now,
    )
    conn.execute(
        sa.update(files)
        .where(files.c.collection_id == row.id, files.c.status == F.AVAILABLE)
        .where(files.c.available_at.is_(None))
        .values(available_at=now)
    )
    names = conn.execute(
        sa.select(files.c.name).where(
            files.c.collection_id == row.id, files.c.status.in_([F.NEW, F.STAGING])
        )
    ).scalars()
    return [str(n) for n in names]


def mark_staging(conn: Connection, row: FeedRow, owner: str, now: float, poll_at: float) -> None:
    """Staging was requested for the collection's new files; its changes are followed now."""
    conn.execute(
        sa.update(files)
        .where(files.c.collection_id == row.id, files.c.status == F.NEW)
        .values(status=F.STAGING, updated_at=now)
    )
    done_polling(conn, row, owner, None, poll_at, status="staging")


def done_polling(
    conn: Connection,
    row: FeedRow,
    owner: str,
    cursor: str | None,
    poll_at: float,
    status: str | None = None,
    sealed: bool | None = None,
) -> None:
    values: dict[str, Any] = {
        "cursor": cursor,
        "next_poll_at": poll_at,
        "lease_owner": None,
        "lease_until": None,
    }
    if status:
        values["status"] = status
    if sealed:
        values["sealed"] = True
    conn.execute(
        sa.update(collections)
        .where(collections.c.id == row.id, collections.c.lease_owner == owner)
        .values(values)
    )


def let_go(conn: Connection, collection_ids: Sequence[int], owner: str) -> None:
    """Give back the leases of collections whose poll changed nothing, in one statement."""
    if collection_ids:
        claims.release(conn, collections, collection_ids, owner)


def apply_changes(
    conn: Connection, row: FeedRow, changes: Sequence[FileInfo], now: float
) -> tuple[int, list[str]]:
    """Apply what the data manager reported; return (files changed, files to stage again).

    Idempotent: a change reported twice finds the file already moved and does nothing; a
    failure reported twice is counted once when the manager says which attempt failed."""
    by: dict[FileStatus, list[FileInfo]] = {}
    for c in changes:
        by.setdefault(c.status, []).append(c)
    changed = 0
    if not row.sealed:  # only a collection that may still grow has files we do not know
        changed = _add_new(conn, row, [c for c in changes if c.status in (F.NEW, F.AVAILABLE)], now)
    base = sa.and_(files.c.collection_id == row.id, files.c.name == sa.bindparam("n"))
    if by.get(F.STAGING):
        res = conn.execute(
            sa.update(files)
            .where(base, files.c.status == F.NEW)
            .values(status=F.STAGING, updated_at=now),
            [{"n": c.name} for c in by[F.STAGING]],
        )
        changed += max(res.rowcount, 0)
    if by.get(F.AVAILABLE):
        res = conn.execute(
            sa.update(files)
            .where(base, sa.or_(files.c.status == F.NEW, files.c.status == F.STAGING))
            .values(
                status=F.AVAILABLE,
                url=sa.bindparam("u"),
                error=None,
                available_at=now,
                updated_at=now,
            ),
            [{"n": c.name, "u": c.url} for c in by[F.AVAILABLE]],
        )
        changed += max(res.rowcount, 0)
    restage: list[str] = []
    if by.get(F.FAILED):
        failed = [c for c in by[F.FAILED]]
        res = conn.execute(
            sa.update(files)
            .where(
                base,
                files.c.status == F.STAGING,
                sa.or_(sa.bindparam("a") == 0, files.c.attempt + 1 == sa.bindparam("a")),
            )
            .values(
                status=F.FAILED,
                attempt=files.c.attempt + 1,
                error=sa.bindparam("e"),
                updated_at=now,
            ),
            [{"n": c.name, "e": c.error or "staging failed", "a": c.attempt} for c in failed],
        )
        changed += max(res.rowcount, 0)
        for chunk in chunks(c.name for c in failed):
            again = conn.execute(
                sa.update(files)
                .where(
                    files.c.collection_id == row.id,
                    files.c.name.in_(chunk),
                    files.c.status == F.FAILED,
                    files.c.job_id.is_(None),
                    files.c.attempt < row.feed.stage_attempts,
                )
                .values(status=after_stage_failure(0, 1), updated_at=now)
                .returning(files.c.name)
            ).scalars()
            restage.extend(str(n) for n in again)
    return changed, restage


def _add_new(conn: Connection, row: FeedRow, seen: Sequence[FileInfo], now: float) -> int:
    """Files that appeared in a growing collection (a folder): recorded as they are."""
    unknown: list[FileInfo] = []
    for chunk in chunks(seen):
        known = set(
            conn.execute(
                sa.select(files.c.name).where(
                    files.c.collection_id == row.id, files.c.name.in_([c.name for c in chunk])
                )
            ).scalars()
        )
        unknown.extend(c for c in chunk if c.name not in known)
    if unknown:
        catalog.add_files(
            conn, row.id, (NewFile(c.name, c.size, c.status, c.url) for c in unknown), now=now
        )
        conn.execute(
            sa.update(files)
            .where(
                files.c.collection_id == row.id,
                files.c.status == F.AVAILABLE,
                files.c.available_at.is_(None),
            )
            .values(available_at=now)
        )
    return len(unknown)


def open_feed_rows(conn: Connection) -> list[FeedRow]:
    """Every collection a work is following (a few per fed work)."""
    rows = conn.execute(
        sa.select(*FEED_COLUMNS).where(
            collections.c.status == "staging", collections.c.work_id.is_not(None)
        )
    )
    return [feed_row(r) for r in rows]


def any_open(conn: Connection) -> bool:
    """Whether some collection is being followed at all (agents skip their carousel work
    for a while when none is)."""
    found = conn.execute(
        sa.select(collections.c.id).where(collections.c.status.in_(OPEN)).limit(1)
    ).first()
    return found is not None
