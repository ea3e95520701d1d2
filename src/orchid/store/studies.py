"""Study rows: the durable state of hyperparameter optimisation (trials: store.trials).

A study is one hpo work; its trials are the points proposed so far, each run as a job
of that work (or, in pull mode, handed to an external worker). The HPO agent claims
studies like the clerk claims workflows: by a wake sequence any change bumps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.states import JobStatus, WorkStatus
from orchid.errors import NotFound
from orchid.store import bulk, claims
from orchid.store.tables import studies, workflows, works

J = JobStatus


@dataclass(frozen=True)
class StudyRow:
    id: int
    workflow_id: int
    work_id: int
    status: str
    message: str
    common: Mapping[str, Any]
    segments: Mapping[str, Any]
    summary: Mapping[str, Any] | None
    created_at: float
    finished_at: float | None


def _study(r: Any) -> StudyRow:
    return StudyRow(
        r.id,
        r.workflow_id,
        r.work_id,
        r.status,
        r.message,
        r.common,
        r.segments,
        r.summary,
        r.created_at,
        r.finished_at,
    )


@dataclass(frozen=True)
class StudyWork:
    """What the HPO agent reads of a study's work."""

    id: int
    name: str
    status: WorkStatus


# --- studies ----------------------------------------------------------------------------


def create(
    conn: Connection, workflow_id: int, work_id: int, common: Mapping[str, Any], now: float
) -> int:
    return int(
        conn.execute(
            sa.insert(studies)
            .values(
                workflow_id=workflow_id,
                work_id=work_id,
                status="running",
                common=dict(common),
                segments={},
                created_at=now,
                updated_at=now,
            )
            .returning(studies.c.id)
        ).scalar_one()
    )


def missing(study_id: int) -> str:
    """The message for a study that does not exist (or that the caller may not see)."""
    return f"no study {study_id}; `orchid hpo studies WORKFLOW` lists them"


def get(conn: Connection, study_id: int) -> StudyRow:
    row = conn.execute(sa.select(studies).where(studies.c.id == study_id)).first()
    if row is None:
        raise NotFound(missing(study_id))
    return _study(row)


def of_workflow(conn: Connection, workflow_id: int) -> list[tuple[StudyRow, str, int]]:
    """A workflow's studies with their work's name and iteration, oldest first."""
    rows = conn.execute(
        sa.select(studies, works.c.name.label("work_name"), works.c.iteration)
        .join(works, works.c.id == studies.c.work_id)
        .where(studies.c.workflow_id == workflow_id)
        .order_by(studies.c.id)
    )
    return [(_study(r), str(r.work_name), int(r.iteration)) for r in rows]


def summaries(conn: Connection, work_ids: Sequence[int]) -> dict[int, Any]:
    """The summaries of ended studies, by work id (what ``works.W.outputs`` reads)."""
    if not work_ids:
        return {}
    rows = conn.execute(
        sa.select(studies.c.work_id, studies.c.summary).where(
            studies.c.work_id.in_(list(work_ids)), studies.c.summary.is_not(None)
        )
    )
    return {int(r.work_id): r.summary for r in rows}


def wake(conn: Connection, study_ids: Iterable[int]) -> None:
    ids = sorted(set(study_ids))
    if ids:
        conn.execute(
            sa.update(studies).where(studies.c.id.in_(ids)).values(wake_seq=studies.c.wake_seq + 1)
        )


def wake_works(conn: Connection, work_ids: Iterable[int]) -> bool:
    """Jobs of these works ended: their studies (if any) have something to look at.
    Returns whether there were any."""
    ids = sorted(set(work_ids))
    if not ids:
        return False
    # a cached text statement: this runs in every batch a carrier records
    sql = (
        "UPDATE studies SET wake_seq = wake_seq + 1 "
        f"WHERE {bulk.in_ids(conn, 'work_id')} AND status = 'running'"
    )
    return conn.execute(bulk.text(conn, sql), {"ids": bulk.ids(conn, ids)}).rowcount > 0


def _to_look_at(now: float) -> list[sa.ColumnElement[bool]]:
    """Running studies that changed or are due."""
    return [
        studies.c.status == "running",
        sa.or_(
            studies.c.wake_seq > studies.c.seen_seq,
            sa.and_(studies.c.due_at.is_not(None), studies.c.due_at <= now),
        ),
    ]


def any_to_look_at(conn: Connection, now: float) -> bool:
    """Whether :func:`claim` would find a study (free or not): a read, which takes no
    write lock, so that an agent loop without studies to look at pays next to nothing."""
    return (
        conn.execute(sa.select(studies.c.id).where(*_to_look_at(now)).limit(1)).first() is not None
    )


def claim(
    conn: Connection, owner: str, now: float, lease: float, limit: int
) -> list[tuple[int, int]]:
    """Lease running studies that changed or are due: (id, wake_seq)."""
    rows = claims.claim(
        conn,
        studies,
        _to_look_at(now),
        owner=owner,
        now=now,
        lease=lease,
        limit=limit,
        returning=[studies.c.wake_seq],
    )
    return [(int(r.id), int(r.wake_seq)) for r in rows]


def hold(conn: Connection, study_id: int, owner: str, now: float, lease: float) -> bool:
    """Renew this owner's lease (and lock the row on PostgreSQL); False if it was lost."""
    res = conn.execute(
        sa.update(studies)
        .where(studies.c.id == study_id, studies.c.lease_owner == owner)
        .values(lease_until=now + lease)
    )
    return res.rowcount == 1


def mark_seen(
    conn: Connection, study_id: int, seq: int, owner: str, due_at: float | None, now: float
) -> None:
    greatest = sa.func.max if conn.dialect.name == "sqlite" else sa.func.greatest
    conn.execute(
        sa.update(studies)
        .where(studies.c.id == study_id, studies.c.lease_owner == owner)
        .values(
            seen_seq=greatest(studies.c.seen_seq, seq),
            due_at=due_at,
            lease_owner=None,
            lease_until=None,
            updated_at=now,
        )
    )


def save_segments(conn: Connection, study_id: int, segments: Mapping[str, Any]) -> None:
    conn.execute(sa.update(studies).where(studies.c.id == study_id).values(segments=dict(segments)))


def finish(
    conn: Connection,
    study_id: int,
    status: str,
    message: str,
    summary: Mapping[str, Any] | None,
    now: float,
) -> None:
    conn.execute(
        sa.update(studies)
        .where(studies.c.id == study_id)
        .values(
            status=status,
            message=message,
            summary=dict(summary) if summary is not None else None,
            finished_at=now,
            updated_at=now,
            due_at=None,
        )
    )


# --- the work and workflow of a study, as the HPO agent reads them ----------------------


def work_of(conn: Connection, work_id: int) -> StudyWork:
    r = conn.execute(
        sa.select(works.c.id, works.c.name, works.c.status).where(works.c.id == work_id)
    ).one()
    return StudyWork(int(r.id), str(r.name), WorkStatus(r.status))


def remaining(conn: Connection, work_id: int) -> int:
    """The work's count of jobs (and the study's sentinel) still to end."""
    return int(conn.execute(sa.select(works.c.remaining).where(works.c.id == work_id)).scalar_one())


def finishing(conn: Connection, workflow_id: int) -> bool:
    """The user asked the workflow to finish: start nothing new, let the running end."""
    return bool(
        conn.execute(sa.select(workflows.c.finishing).where(workflows.c.id == workflow_id)).scalar()
    )
