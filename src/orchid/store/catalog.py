"""The data catalog: a workflow's collections (datasets) and their files with their status.

The data carousel fills these from a data manager; the API reads them. Files are added
in bulk and idempotently (a name already in the collection is left as it is).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from orchid.core.model import File
from orchid.core.states import FileStatus
from orchid.errors import InvalidInput, NotFound
from orchid.store.tables import collections, files, workflows, works

CHUNK = 5000  # files per batch of INSERTs
_LIMITS = {"scope": 100, "name": 255, "manager": 40, "status": 16}  # the column widths


class NewFile(NamedTuple):
    """A file to add to a collection."""

    name: str
    size: int = 0
    status: FileStatus = FileStatus.NEW
    url: str | None = None  # where it is on disk, if it is


@dataclass(frozen=True)
class CollectionSummary:
    """A collection with how many of its files are in each status."""

    id: int
    workflow_id: int
    work_id: int | None
    scope: str
    name: str
    manager: str
    status: str
    created_at: float
    counts: Mapping[FileStatus, int] = field(default_factory=dict)

    @property
    def files(self) -> int:
        return sum(self.counts.values())


def _check_text(what: str, value: str) -> str:
    limit = _LIMITS[what]
    if not value or len(value) > limit:
        raise InvalidInput(f"a collection's {what} must be 1 to {limit} characters; got {value!r}")
    return value


def add_collection(
    conn: Connection,
    workflow_id: int,
    *,
    scope: str,
    name: str,
    manager: str,
    now: float,
    status: str = "open",
    work_id: int | None = None,
) -> int:
    """A new collection of a workflow (optionally of one of its works); returns its id."""
    for what, value in (("scope", scope), ("name", name), ("manager", manager), ("status", status)):
        _check_text(what, value)
    if conn.execute(sa.select(workflows.c.id).where(workflows.c.id == workflow_id)).first() is None:
        raise NotFound(f"no workflow {workflow_id}; `orchid status` lists the workflows")
    if work_id is not None:
        owner = conn.execute(sa.select(works.c.workflow_id).where(works.c.id == work_id)).first()
        if owner is None or owner.workflow_id != workflow_id:
            raise InvalidInput(f"work {work_id} is not a work of workflow {workflow_id}")
    cid = conn.execute(
        sa.insert(collections)
        .values(
            workflow_id=workflow_id,
            work_id=work_id,
            scope=scope,
            name=name,
            manager=manager,
            status=status,
            created_at=now,
        )
        .returning(collections.c.id)
    ).scalar_one()
    return int(cid)


def add_files(
    conn: Connection, collection_id: int, new: Iterable[NewFile | tuple[str, int]], *, now: float
) -> int:
    """Add files to a collection; names already there are skipped. Returns how many were added."""
    if (
        conn.execute(sa.select(collections.c.id).where(collections.c.id == collection_id)).first()
        is None
    ):
        raise NotFound(f"no collection {collection_id}")
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(files)
    stmt = insert.on_conflict_do_nothing(
        index_elements=[files.c.collection_id, files.c.name]
    ).returning(files.c.id)
    rows = (_row(collection_id, NewFile(*f), now) for f in new)
    added = 0
    # one compiled statement run over many parameter sets (SQLAlchemy batches them into
    # multi-row INSERTs itself); counted through RETURNING, which skips conflicting rows
    while chunk := list(islice(rows, CHUNK)):
        added += len(conn.execute(stmt, chunk).all())
    return added


def _row(collection_id: int, f: NewFile, now: float) -> dict[str, Any]:
    if not isinstance(f.name, str) or not 0 < len(f.name) <= 255:
        raise InvalidInput(f"a file name must be 1 to 255 characters; got {f.name!r}")
    if isinstance(f.size, bool) or not isinstance(f.size, int) or f.size < 0:
        raise InvalidInput(f"the size of file {f.name!r} must be a whole number of bytes >= 0")
    try:
        status = FileStatus(f.status)
    except ValueError:
        known = ", ".join(s.value for s in FileStatus)
        raise InvalidInput(f"file {f.name!r}: unknown status {f.status!r}; use {known}") from None
    return {
        "collection_id": collection_id,
        "name": f.name,
        "size": f.size,
        "status": status,
        "updated_at": now,
        "url": f.url,
        # a file listed as already on disk (or past it) came to disk no later than now
        "available_at": now if status in ON_DISK_OR_PAST else None,
    }


ON_DISK_OR_PAST = frozenset(
    {FileStatus.AVAILABLE, FileStatus.PROCESSING, FileStatus.PROCESSED, FileStatus.DELETED}
)


def _summaries(conn: Connection, where: sa.ColumnElement[bool]) -> list[CollectionSummary]:
    rows = list(conn.execute(sa.select(collections).where(where).order_by(collections.c.id)))
    if not rows:
        return []
    counts: dict[int, dict[FileStatus, int]] = {r.id: {} for r in rows}
    for c in conn.execute(
        sa.select(files.c.collection_id, files.c.status, sa.func.count())
        .where(files.c.collection_id.in_(sa.select(collections.c.id).where(where)))
        .group_by(files.c.collection_id, files.c.status)
    ):
        counts[c[0]][FileStatus(c[1])] = int(c[2])
    return [_summary(r, counts[r.id]) for r in rows]


def _summary(r: Row[Any], counts: Mapping[FileStatus, int]) -> CollectionSummary:
    return CollectionSummary(
        id=r.id,
        workflow_id=r.workflow_id,
        work_id=r.work_id,
        scope=r.scope,
        name=r.name,
        manager=r.manager,
        status=r.status,
        created_at=r.created_at,
        counts=counts,
    )


def list_collections(conn: Connection, workflow_id: int) -> list[CollectionSummary]:
    """A workflow's collections in creation order, with their file counts by status."""
    return _summaries(conn, collections.c.workflow_id == workflow_id)


def get_collection(conn: Connection, workflow_id: int, collection_id: int) -> CollectionSummary:
    """One collection of a workflow; NotFound also when it belongs to another workflow."""
    found = _summaries(
        conn,
        sa.and_(collections.c.id == collection_id, collections.c.workflow_id == workflow_id),
    )
    if not found:
        raise _no_collection(workflow_id, collection_id)
    return found[0]


def _no_collection(workflow_id: int, collection_id: int) -> NotFound:
    return NotFound(
        f"workflow {workflow_id} has no collection {collection_id}; "
        f"GET /workflows/{workflow_id}/collections lists its collections"
    )


def list_files(
    conn: Connection,
    workflow_id: int,
    collection_id: int,
    *,
    status: Sequence[str] = (),
    after_id: int = 0,
    limit: int = 100,
) -> list[File]:
    """A page of a collection's files in id order, optionally of some statuses.

    NotFound if the collection is not the workflow's (the caller checked the workflow)."""
    owner = conn.execute(
        sa.select(collections.c.workflow_id).where(collections.c.id == collection_id)
    ).first()
    if owner is None or owner.workflow_id != workflow_id:
        raise _no_collection(workflow_id, collection_id)
    q = (
        sa.select(files.c.id, files.c.collection_id, files.c.name, files.c.size, files.c.status)
        .where(files.c.collection_id == collection_id, files.c.id > after_id)
        .order_by(files.c.id)
        .limit(limit)
    )
    if status:
        q = q.where(files.c.status.in_([str(s) for s in status]))
    return [
        File(
            id=r.id,
            collection_id=r.collection_id,
            name=r.name,
            size=int(r.size),
            status=FileStatus(r.status),
        )
        for r in conn.execute(q)
    ]
