"""Retention: the rows of an ended workflow read out, deleted and put back in batches.

See docs/architecture.md, "Retention". The workflow's own row stays in ``workflows`` the
whole time (its id, owner, sharing, status and times: who may see it and what it was), with
``archive_state`` saying where its other rows are:

- ``None``: live;
- ``writing``: being copied into its archive file; still whole and readable;
- ``deleting``: the file is written (``archive_uri``, ``archived_at``); its rows are
  deleted in batches, each its own transaction;
- ``archived``: only the row and its ``archive_summary`` (works and job counts) are left;
- ``restoring``: rows are put back from the file in batches.

Every step is one short transaction and can be run again after a crash: the caller
(``engine.archivist``) looks at the state and goes on from there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.states import TERMINAL_WORKFLOW
from orchid.errors import NotFound
from orchid.store import resultbytes
from orchid.store import works as works_store
from orchid.store.tables import (
    collections,
    commands,
    events,
    files,
    job_edges,
    jobs,
    messages,
    studies,
    trials,
    work_routes,
    workflows,
    works,
)

WRITING = "writing"
DELETING = "deleting"
ARCHIVED = "archived"
RESTORING = "restoring"
GONE = frozenset({DELETING, ARCHIVED, RESTORING})
"""States whose rows are not (all) in the live tables: the workflow reads as archived."""

# a workflow's rows, parents before children (restored in this order, deleted in reverse)
TABLES: tuple[sa.Table, ...] = (
    works,
    work_routes,
    commands,
    events,
    messages,
    collections,
    files,
    jobs,
    job_edges,
    studies,
    trials,
)
BY_NAME: Mapping[str, sa.Table] = {t.name: t for t in TABLES}

# the workflow row's documents an archived workflow does without (the file keeps them)
_BULKY: dict[str, Any] = {"template": {}, "loops": {}, "links": None}
_TERMINAL = sorted(str(s) for s in TERMINAL_WORKFLOW)


@dataclass(frozen=True)
class Entry:
    """A workflow as retention sees it."""

    id: int
    name: str
    owner: str
    status: str
    finished_at: float | None
    archive_state: str | None
    archive_uri: str | None
    archived_at: float | None


_ENTRY = (
    workflows.c.id,
    workflows.c.name,
    workflows.c.owner,
    workflows.c.status,
    workflows.c.finished_at,
    workflows.c.archive_state,
    workflows.c.archive_uri,
    workflows.c.archived_at,
)


def _entry(r: Any) -> Entry:
    return Entry(*(r._mapping[c.name] for c in _ENTRY))


def entry(conn: Connection, workflow_id: int) -> Entry:
    row = conn.execute(sa.select(*_ENTRY).where(workflows.c.id == workflow_id)).first()
    if row is None:
        raise NotFound(f"no workflow {workflow_id}; `orchid status` lists the workflows")
    return _entry(row)


def _quiet(now: float) -> list[sa.ColumnElement[bool]]:
    """Ended, seen by the clerk since its last change, no lease on it: nothing acts on it."""
    return [
        workflows.c.status.in_(_TERMINAL),
        workflows.c.seen_seq >= workflows.c.wake_seq,
        sa.or_(workflows.c.lease_until.is_(None), workflows.c.lease_until < now),
    ]


def due(conn: Connection, cutoff: float, now: float, limit: int) -> list[Entry]:
    """Workflows to archive, oldest first: those a crash left half done (writing,
    deleting), then live ones that ended before ``cutoff`` and that nothing acts on."""
    unfinished = list(
        conn.execute(
            sa.select(*_ENTRY)
            .where(workflows.c.archive_state.in_([WRITING, DELETING]))
            .order_by(workflows.c.id)
            .limit(limit)
        )
    )
    left = limit - len(unfinished)
    fresh: list[Any] = []
    if left > 0:
        fresh = list(
            conn.execute(
                sa.select(*_ENTRY)
                .where(
                    workflows.c.archive_state.is_(None),
                    workflows.c.finished_at < cutoff,
                    *_quiet(now),
                )
                .order_by(workflows.c.finished_at, workflows.c.id)
                .limit(left)
            )
        )
    return [_entry(r) for r in [*unfinished, *fresh]]


def mark(
    conn: Connection, workflow_id: int, uri: str, owner: str, now: float, lease: float
) -> bool:
    """Start archiving a live, ended, quiet workflow (``writing``, leased to ``owner``
    while it writes the file); False if it is not one.

    The guard is on the workflow's own row, so a command queued meanwhile (which bumps
    ``wake_seq``, see :func:`orchid.store.commands.add`) makes one of the two lose.
    """
    res = conn.execute(
        sa.update(workflows)
        .where(workflows.c.id == workflow_id, workflows.c.archive_state.is_(None), *_quiet(now))
        .values(archive_state=WRITING, archive_uri=uri, lease_owner=owner, lease_until=now + lease)
    )
    return res.rowcount == 1


def hold(conn: Connection, workflow_id: int, owner: str, now: float, lease: float) -> bool:
    """Take or renew the lease of a workflow being written (one writer of its file at a
    time: a crashed writer's lease runs out, and another goes on); False if another has it.
    """
    free = sa.or_(
        workflows.c.lease_owner == owner,
        workflows.c.lease_until.is_(None),
        workflows.c.lease_until < now,
    )
    res = conn.execute(
        sa.update(workflows)
        .where(workflows.c.id == workflow_id, workflows.c.archive_state == WRITING, free)
        .values(lease_owner=owner, lease_until=now + lease)
    )
    return res.rowcount == 1


def release(conn: Connection, owner: str) -> None:
    """Give back the leases of files this owner was writing (an agent that stops): another
    takes them over at once instead of after the lease."""
    conn.execute(
        sa.update(workflows)
        .where(workflows.c.lease_owner == owner, workflows.c.archive_state == WRITING)
        .values(lease_owner=None, lease_until=None)
    )


def written(conn: Connection, workflow_id: int, owner: str, now: float) -> bool:
    """The file is safely written: keep the summary, drop the bulky documents, and go on
    to deleting (False if this owner was not writing it)."""
    summary = [_work_summary(w) for w in works_store.list_for(conn, workflow_id)]
    res = conn.execute(
        sa.update(workflows)
        .where(
            workflows.c.id == workflow_id,
            workflows.c.archive_state == WRITING,
            workflows.c.lease_owner == owner,
        )
        .values(
            archive_state=DELETING,
            archived_at=now,
            archive_summary=summary,
            lease_owner=None,
            lease_until=None,
            **_BULKY,
        )
    )
    return res.rowcount == 1


def _work_summary(w: Any) -> dict[str, Any]:
    return {
        "id": w.id,
        "name": w.name,
        "iteration": w.iteration,
        "status": str(w.status),
        "message": w.message,
        "n_jobs": w.n_jobs,
        "counts": {str(k): int(v) for k, v in w.counts.items()},
        "started_at": w.started_at,
        "finished_at": w.finished_at,
    }


def set_state(conn: Connection, workflow_id: int, before: str | None, after: str | None) -> bool:
    """Move from one state to the next; False if the workflow was not in ``before``."""
    state = workflows.c.archive_state
    res = conn.execute(
        sa.update(workflows)
        .where(
            workflows.c.id == workflow_id, state.is_(None) if before is None else state == before
        )
        .values(archive_state=after)
    )
    return res.rowcount == 1


def unarchive(conn: Connection, workflow_id: int, row: Mapping[str, Any]) -> bool:
    """The last step of a restore: the workflow row's documents back from the file, and
    the archive columns cleared (False if it was not being restored)."""
    values = {k: row[k] for k in _BULKY if k in row}
    res = conn.execute(
        sa.update(workflows)
        .where(workflows.c.id == workflow_id, workflows.c.archive_state == RESTORING)
        .values(
            archive_state=None, archive_uri=None, archived_at=None, archive_summary=None, **values
        )
    )
    if res.rowcount != 1:
        return False
    resultbytes.recount(conn, workflow_id)  # the results are live again, as now written
    return True


def summary(conn: Connection, workflow_id: int) -> list[dict[str, Any]] | None:
    """The works of an archived workflow as they were (None: it is not archived)."""
    row = conn.execute(
        sa.select(workflows.c.archive_state, workflows.c.archive_summary).where(
            workflows.c.id == workflow_id
        )
    ).first()
    if row is None or row.archive_state not in GONE:
        return None
    return list(row.archive_summary or [])


# --- the rows -----------------------------------------------------------------------------


def _scope(table: sa.Table, workflow_id: int) -> sa.ColumnElement[bool]:
    """The rows of ``table`` that belong to the workflow."""
    if table is files:
        owned = sa.select(collections.c.id).where(collections.c.workflow_id == workflow_id)
        return files.c.collection_id.in_(owned)
    if table is trials:
        owned = sa.select(studies.c.id).where(studies.c.workflow_id == workflow_id)
        return trials.c.study_id.in_(owned)
    if table is job_edges:
        owned = sa.select(jobs.c.id).where(jobs.c.workflow_id == workflow_id)
        return job_edges.c.parent_id.in_(owned)
    return table.c.workflow_id == workflow_id


def _key(table: sa.Table) -> list[sa.Column[Any]]:
    return list(table.primary_key.columns)


def workflow_row(conn: Connection, workflow_id: int) -> dict[str, Any]:
    row = conn.execute(sa.select(workflows).where(workflows.c.id == workflow_id)).first()
    if row is None:
        raise NotFound(f"no workflow {workflow_id}")
    return dict(row._mapping)


def rows(
    conn: Connection, table: sa.Table, workflow_id: int, after: Sequence[Any] | None, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` rows of the workflow in ``table``, in key order after ``after``
    (for the tables a workflow has few rows in; :func:`all_rows` reads the big ones)."""
    key = _key(table)
    q = sa.select(table).where(_scope(table, workflow_id)).order_by(*key).limit(limit)
    if after is not None:
        q = q.where(sa.tuple_(*key) > sa.tuple_(*after))
    return [dict(r._mapping) for r in conn.execute(q)]


def key_of(table: sa.Table, row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in _key(table))


# the big tables are read by parent, in the order of a unique index that starts with the
# parent's id: each batch is one index range, whatever the size of the table
_BY_PARENT: dict[str, tuple[sa.Table, sa.Column[Any], tuple[str, ...]]] = {
    "jobs": (works, jobs.c.work_id, ("name",)),
    "files": (collections, files.c.collection_id, ("name",)),
    "trials": (studies, trials.c.study_id, ("segment", "number")),
}


def _parents(connect: Any, parent: sa.Table, workflow_id: int) -> list[int]:
    with connect() as conn:
        q = sa.select(parent.c.id).where(parent.c.workflow_id == workflow_id).order_by(parent.c.id)
        return [int(i) for i in conn.execute(q).scalars()]


def _children(
    connect: Any, table: sa.Table, workflow_id: int, batch: int, columns: Sequence[Any] = ()
) -> Iterator[list[Any]]:
    """Batches of the rows of a big table (``columns`` of them, or whole rows as dicts)."""
    parent, fk, names = _BY_PARENT[table.name]
    key = [table.c[n] for n in names]
    for parent_id in _parents(connect, parent, workflow_id):
        after: tuple[Any, ...] | None = None
        while True:
            q = sa.select(*(columns or [table])).where(fk == parent_id).order_by(*key).limit(batch)
            if columns:
                q = q.add_columns(*key)
            if after is not None:
                q = q.where(sa.tuple_(*key) > sa.tuple_(*after))
            with connect() as conn:
                chunk = list(conn.execute(q))
            if chunk:
                yield chunk
            if len(chunk) < batch:
                break
            after = tuple(chunk[-1]._mapping[n] for n in names)


def all_rows(
    connect: Any, table: sa.Table, workflow_id: int, batch: int
) -> Iterator[dict[str, Any]]:
    """Every row of the workflow in ``table``, read ``batch`` at a time, each batch on a
    connection of its own from ``connect()`` (no transaction stays open between them)."""
    if table.name in _BY_PARENT:
        for chunk in _children(connect, table, workflow_id, batch):
            yield from (dict(r._mapping) for r in chunk)
        return
    if table is job_edges:  # those leaving each batch of the workflow's jobs
        for chunk in _children(connect, jobs, workflow_id, batch, [jobs.c.id]):
            ids = [int(r.id) for r in chunk]
            q = (
                sa.select(job_edges)
                .where(job_edges.c.parent_id.in_(ids))
                .order_by(job_edges.c.parent_id, job_edges.c.child_id)
            )
            with connect() as conn:
                yield from (dict(r._mapping) for r in conn.execute(q))
        return
    after: tuple[Any, ...] | None = None
    while True:
        with connect() as conn:
            chunk = rows(conn, table, workflow_id, after, batch)
        yield from chunk
        if len(chunk) < batch:
            return
        after = key_of(table, chunk[-1])


def delete_batch(conn: Connection, workflow_id: int, limit: int) -> tuple[str, int]:
    """Delete up to ``limit`` rows of the workflow from the first table (children first)
    that still has some: (its name, rows deleted); ("", 0) once none is left.

    No ORDER BY: each batch takes any ``limit`` rows the workflow's index finds. Jobs go
    with their edges (both ends), so no batch ever looks for edges of deleted jobs."""
    for table in reversed(TABLES):
        if table is job_edges:
            continue
        key = _key(table)
        picked = sa.select(*key).where(_scope(table, workflow_id)).limit(limit)
        if table is jobs:
            ids = [int(i) for i in conn.execute(picked).scalars()]
            if not ids:
                continue
            conn.execute(sa.delete(job_edges).where(job_edges.c.parent_id.in_(ids)))
            conn.execute(sa.delete(job_edges).where(job_edges.c.child_id.in_(ids)))
            n = conn.execute(sa.delete(jobs).where(jobs.c.id.in_(ids))).rowcount
            return table.name, int(n)
        if len(key) == 1:
            where = key[0].in_(picked.scalar_subquery())
        else:
            where = sa.tuple_(*key).in_(picked)
        n = conn.execute(sa.delete(table).where(where)).rowcount
        if n:
            return table.name, int(n)
    return "", 0


def insert(conn: Connection, table: sa.Table, batch: Sequence[Mapping[str, Any]]) -> None:
    """Put archived rows back, with their ids (only the columns the table has now)."""
    if not batch:
        return
    names = set(table.c.keys())
    conn.execute(sa.insert(table), [{k: v for k, v in r.items() if k in names} for r in batch])


def job_logs(
    conn: Connection, workflow_id: int, after_id: int, limit: int
) -> list[tuple[int, str]]:
    """(job id, log_uri) of the workflow's jobs that have a log, in id order."""
    q = (
        sa.select(jobs.c.id, jobs.c.log_uri)
        .where(jobs.c.workflow_id == workflow_id, jobs.c.id > after_id, jobs.c.log_uri.is_not(None))
        .order_by(jobs.c.id)
        .limit(limit)
    )
    return [(int(r.id), str(r.log_uri)) for r in conn.execute(q)]
