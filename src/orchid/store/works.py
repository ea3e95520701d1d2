"""Work rows: creation, the clerk's starts and stops, the transformer's claim, progress."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from orchid.core.model import Work
from orchid.core.states import TERMINAL_WORK, JobStatus, WorkStatus
from orchid.errors import NotFound
from orchid.store import bulk, claims
from orchid.store.tables import jobs, workflows, works


def create(
    conn: Connection,
    workflow_id: int,
    items: Iterable[tuple[str, int]],
    static: frozenset[str],
    now: float,
) -> dict[tuple[str, int], int]:
    """Insert works in ``waiting``; return their ids by (name, iteration).

    One multi-row statement per batch (a template may hold 10^5 works), ids returned in
    the order of ``items``.
    """
    keys = list(items)
    if not keys:
        return {}
    rows = [
        {
            "workflow_id": workflow_id,
            "name": name,
            "iteration": iteration,
            "status": WorkStatus.WAITING,
            "static": name in static,
            "created_at": now,
        }
        for name, iteration in keys
    ]
    stmt = sa.insert(works).returning(works.c.id, sort_by_parameter_order=True)
    ids = conn.execute(stmt, rows).scalars().all()
    return {key: int(wid) for key, wid in zip(keys, ids, strict=True)}


def set_ready(conn: Connection, work_id: int, inputs: Mapping[str, Any]) -> None:
    conn.execute(
        sa.update(works)
        .where(works.c.id == work_id, works.c.status == WorkStatus.WAITING)
        .values(status=WorkStatus.READY, inputs=dict(inputs))
    )


def stop(
    conn: Connection, work_id: int, status: WorkStatus, cause: str, message: str, now: float
) -> None:
    """Skip or fail a work that never ran; its listed jobs will never run either."""
    conn.execute(
        sa.update(works)
        .where(works.c.id == work_id, works.c.status.in_([WorkStatus.WAITING, WorkStatus.READY]))
        .values(status=status, cause=cause, message=message, finished_at=now)
    )
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.work_id == work_id, jobs.c.status == JobStatus.WAITING)
        .values(status=JobStatus.SKIPPED, error=f"work {status}: {message}", finished_at=now)
    )


def claim_ready(
    conn: Connection, owner: str, now: float, lease: float, limit: int
) -> list[Row[Any]]:
    """Lease works the clerk made ready: (id, workflow_id, name, iteration, inputs, static)."""
    return claims.claim(
        conn,
        works,
        [works.c.status == WorkStatus.READY],
        owner=owner,
        now=now,
        lease=lease,
        limit=limit,
        returning=[
            works.c.workflow_id,
            works.c.name,
            works.c.iteration,
            works.c.inputs,
            works.c.static,
        ],
    )


def mark_running(conn: Connection, work_id: int, n_jobs: int, remaining: int, now: float) -> None:
    conn.execute(
        sa.update(works)
        .where(works.c.id == work_id)
        .values(
            status=WorkStatus.RUNNING,
            n_jobs=n_jobs,
            remaining=remaining,
            started_at=now,
            lease_owner=None,
            lease_until=None,
        )
    )


def finish(conn: Connection, work_id: int, status: WorkStatus, message: str, now: float) -> bool:
    """End a running work; False if it was no longer running (aborted meanwhile)."""
    res = conn.execute(
        sa.update(works)
        .where(works.c.id == work_id, works.c.status == WorkStatus.RUNNING)
        .values(status=status, message=message, finished_at=now, lease_owner=None, lease_until=None)
    )
    return res.rowcount == 1


def counts(conn: Connection, work_id: int) -> dict[JobStatus, int]:
    rows = conn.execute(
        sa.select(jobs.c.status, sa.func.count())
        .where(jobs.c.work_id == work_id)
        .group_by(jobs.c.status)
    )
    return {JobStatus(s): int(n) for s, n in rows}


def list_for(conn: Connection, workflow_id: int, with_counts: bool = True) -> list[Work]:
    """Every work of a workflow with its job counts by status (one grouped query)."""
    rows = list(
        conn.execute(
            sa.select(works).where(works.c.workflow_id == workflow_id).order_by(works.c.id)
        )
    )
    if not rows:
        return _archived(conn, workflow_id)
    by_work: dict[int, dict[JobStatus, int]] = {r.id: {} for r in rows}
    if with_counts:
        for wid, status, n in conn.execute(
            sa.select(jobs.c.work_id, jobs.c.status, sa.func.count())
            .where(jobs.c.workflow_id == workflow_id)
            .group_by(jobs.c.work_id, jobs.c.status)
        ):
            by_work[wid][JobStatus(status)] = int(n)
    return [
        Work(
            id=r.id,
            workflow_id=r.workflow_id,
            name=r.name,
            iteration=r.iteration,
            status=WorkStatus(r.status),
            message=r.message,
            n_jobs=r.n_jobs,
            counts=by_work[r.id],
            started_at=r.started_at,
            finished_at=r.finished_at,
        )
        for r in rows
    ]


def _archived(conn: Connection, workflow_id: int) -> list[Work]:
    """The works of an archived workflow, as its summary keeps them (store/archive.py)."""
    summary = conn.execute(
        sa.select(workflows.c.archive_summary).where(workflows.c.id == workflow_id)
    ).scalar()
    return [
        Work(
            id=int(w["id"]),
            workflow_id=workflow_id,
            name=str(w["name"]),
            iteration=int(w["iteration"]),
            status=WorkStatus(w["status"]),
            message=str(w.get("message") or ""),
            n_jobs=int(w.get("n_jobs") or 0),
            counts={JobStatus(k): int(v) for k, v in (w.get("counts") or {}).items()},
            started_at=w.get("started_at"),
            finished_at=w.get("finished_at"),
        )
        for w in summary or []
    ]


def reopen(conn: Connection, workflow_id: int) -> list[int]:
    """For retry: failed/partial works run again; works skipped because of them wait again."""
    again = list(
        conn.execute(
            sa.update(works)
            .where(
                works.c.workflow_id == workflow_id,
                works.c.status.in_([WorkStatus.FAILED, WorkStatus.PARTIAL]),
                works.c.n_jobs > 0,
            )
            .values(status=WorkStatus.RUNNING, message="", finished_at=None)
            .returning(works.c.id)
        ).scalars()
    )
    conn.execute(
        sa.update(works)
        .where(
            works.c.workflow_id == workflow_id,
            sa.or_(
                sa.and_(works.c.status == WorkStatus.SKIPPED, works.c.cause == "upstream"),
                sa.and_(works.c.status == WorkStatus.FAILED, works.c.n_jobs == 0),
            ),
        )
        .values(status=WorkStatus.WAITING, cause=None, message="", finished_at=None)
    )
    return again


def cancel_all(conn: Connection, workflow_id: int, now: float) -> list[int]:
    """Abort: every work not over is cancelled; returns their ids."""
    return list(
        conn.execute(
            sa.update(works)
            .where(works.c.workflow_id == workflow_id, works.c.status.not_in(list(TERMINAL_WORK)))
            .values(status=WorkStatus.CANCELLED, message="aborted by the user", finished_at=now)
            .returning(works.c.id)
        ).scalars()
    )


def add_remaining(conn: Connection, deltas: Mapping[int, int]) -> list[int]:
    """Adjust each work's count of unfinished jobs; return those that reached zero while running."""
    if not deltas:
        return []
    # cached text statements: this runs in every batch a carrier records (a job chain: in
    # every step), where building and compiling the Core statements was most of its cost
    conn.execute(
        bulk.text(conn, "UPDATE works SET remaining = remaining + :delta WHERE id = :wid", ()),
        [{"wid": w, "delta": d} for w, d in deltas.items()],
    )
    sql = f"SELECT id FROM works WHERE {bulk.in_ids(conn, 'id')} AND remaining <= 0 AND status = 'running'"
    return [
        int(w)
        for w in conn.execute(bulk.text(conn, sql), {"ids": bulk.ids(conn, deltas)}).scalars()
    ]


def find(conn: Connection, workflow_id: int, name: str) -> tuple[int, int]:
    """(id, number of jobs) of a workflow's work of that name (its first iteration)."""
    row = conn.execute(
        sa.select(works.c.id)
        .where(works.c.workflow_id == workflow_id, works.c.name == name)
        .order_by(works.c.iteration)
        .limit(1)
    ).first()
    if row is None:
        raise NotFound(f"workflow {workflow_id} has no work named {name!r}")
    return int(row.id), sum(counts(conn, int(row.id)).values())


def workflow_of(conn: Connection, work_ids: Sequence[int]) -> dict[int, int]:
    rows = conn.execute(sa.select(works.c.id, works.c.workflow_id).where(works.c.id.in_(work_ids)))
    return {int(r.id): int(r.workflow_id) for r in rows}
