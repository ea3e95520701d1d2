"""Workflow rows: submission, the clerk's claim and snapshot, status, listing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.model import Workflow
from orchid.core.plan import LoopState, RunState, WorkState
from orchid.core.states import TERMINAL_WORKFLOW, JobStatus, WorkflowStatus, WorkStatus
from orchid.errors import NotFound
from orchid.store import claims, studies
from orchid.store.tables import jobs, workflows, works


def create(
    conn: Connection,
    *,
    name: str,
    owner: str,
    template: Mapping[str, Any],
    params: Mapping[str, Any],
    base_dir: str | None,
    now: float,
    share_group: str | None = None,
    open: bool = False,
    owner_groups: Iterable[str] = (),
    priority: int = 0,
) -> int:
    return int(
        conn.execute(
            sa.insert(workflows)
            .values(
                name=name,
                owner=owner,
                status=WorkflowStatus.PENDING,
                template=dict(template),
                params=dict(params),
                loops={},
                base_dir=base_dir,
                share_group=share_group,
                owner_groups=sorted(owner_groups),
                open=open,
                priority=priority,
                created_at=now,
                updated_at=now,
            )
            .returning(workflows.c.id)
        ).scalar_one()
    )


def wake(conn: Connection, workflow_ids: Iterable[int]) -> None:
    """Tell the clerk these workflows changed (bumps their wake sequence)."""
    ids = sorted(set(workflow_ids))
    if ids:
        conn.execute(
            sa.update(workflows)
            .where(workflows.c.id.in_(ids))
            .values(wake_seq=workflows.c.wake_seq + 1)
        )


def claim_changed(
    conn: Connection, owner: str, now: float, lease: float, limit: int
) -> list[tuple[int, int]]:
    """Lease workflows that changed since the clerk last looked: (id, wake_seq)."""
    rows = claims.claim(
        conn,
        workflows,
        # an archived workflow's rows are gone: nothing to reconcile (store/archive.py)
        [workflows.c.wake_seq > workflows.c.seen_seq, workflows.c.archive_state.is_(None)],
        owner=owner,
        now=now,
        lease=lease,
        limit=limit,
        returning=[workflows.c.wake_seq],
    )
    return [(int(r.id), int(r.wake_seq)) for r in rows]


def hold(conn: Connection, workflow_id: int, owner: str, now: float, lease: float) -> bool:
    """Renew this owner's lease and lock the row for the transaction; False if it was lost.

    A reconcile that started after its lease ran out must not run beside the
    clerk that took the workflow over.
    """
    res = conn.execute(
        sa.update(workflows)
        .where(workflows.c.id == workflow_id, workflows.c.lease_owner == owner)
        .values(lease_until=now + lease)
    )
    return res.rowcount == 1


def mark_seen(conn: Connection, workflow_id: int, seq: int, owner: str) -> None:
    """Record what the clerk has seen and release its lease (a later change keeps it dirty)."""
    conn.execute(
        sa.update(workflows)
        .where(workflows.c.id == workflow_id, workflows.c.lease_owner == owner)
        .values(
            seen_seq=sa.func.max(workflows.c.seen_seq, seq)
            if conn.dialect.name == "sqlite"
            else sa.func.greatest(workflows.c.seen_seq, seq),
            lease_owner=None,
            lease_until=None,
        )
    )


def set_links(conn: Connection, workflow_id: int, links: Sequence[tuple[str, str]]) -> None:
    """Record the work-to-work links that job-level parents imply (the task graph's edges)."""
    conn.execute(
        sa.update(workflows)
        .where(workflows.c.id == workflow_id)
        .values(links=[list(pair) for pair in links])
    )


def owner_of(conn: Connection, workflow_id: int) -> tuple[str, frozenset[str]]:
    """Who submitted a workflow, and their groups then."""
    r = conn.execute(
        sa.select(workflows.c.owner, workflows.c.owner_groups).where(workflows.c.id == workflow_id)
    ).one_or_none()
    if r is None:
        raise NotFound(f"no workflow {workflow_id}")
    return r.owner, frozenset(r.owner_groups or ())


def template_of(conn: Connection, workflow_id: int) -> tuple[dict[str, Any], str | None]:
    row = conn.execute(
        sa.select(workflows.c.template, workflows.c.base_dir).where(workflows.c.id == workflow_id)
    ).first()
    if row is None:
        raise NotFound(f"no workflow {workflow_id}")
    return dict(row.template), row.base_dir


def run_state(
    conn: Connection,
    workflow_id: int,
    read: frozenset[str],
    counted: frozenset[str] = frozenset(),
) -> RunState:
    """The snapshot the planner decides on: job counts of the works in ``read`` or
    ``counted``, results of those in ``read`` (a million-job work is never loaded
    unless an expression reads its results)."""
    wf = conn.execute(sa.select(workflows).where(workflows.c.id == workflow_id)).one()
    rows = list(
        conn.execute(
            sa.select(works.c.id, works.c.name, works.c.iteration, works.c.status, works.c.message)
            .where(works.c.workflow_id == workflow_id)
            .order_by(works.c.id)
        )
    )
    wanted = [r.id for r in rows if r.name in read]
    to_count = [r.id for r in rows if r.name in read or r.name in counted]
    counts: dict[int, dict[JobStatus, int]] = {i: {} for i in to_count}
    results: dict[int, list[Any]] = {i: [] for i in wanted}
    if to_count:
        for c in conn.execute(
            sa.select(jobs.c.work_id, jobs.c.status, sa.func.count())
            .where(jobs.c.work_id.in_(to_count))
            .group_by(jobs.c.work_id, jobs.c.status)
        ):
            counts[c[0]][JobStatus(c[1])] = int(c[2])
    if wanted:
        for r in conn.execute(
            sa.select(jobs.c.work_id, jobs.c.result)
            .where(jobs.c.work_id.in_(wanted), jobs.c.status == JobStatus.SUCCEEDED)
            .order_by(jobs.c.id)
        ):
            results[r.work_id].append(r.result)
        for work_id, study_summary in studies.summaries(conn, wanted).items():
            results[work_id] = [study_summary]  # an hpo work's outputs: its best trials
    return RunState(
        workflow_id=workflow_id,
        name=wf.name,
        status=WorkflowStatus(wf.status),
        params=wf.params,
        finishing=bool(wf.finishing),
        open=bool(wf.open),
        close_error=wf.close_error or "",
        loops={k: LoopState.from_json(v) for k, v in (wf.loops or {}).items()},
        works=[
            WorkState(
                id=r.id,
                name=r.name,
                iteration=r.iteration,
                status=WorkStatus(r.status),
                counts=counts.get(r.id, {}),
                results=results.get(r.id),
                message=r.message,
            )
            for r in rows
        ],
    )


def set_status(
    conn: Connection, workflow_id: int, status: WorkflowStatus, message: str, now: float
) -> None:
    conn.execute(
        sa.update(workflows)
        .where(workflows.c.id == workflow_id)
        .values(
            status=status,
            message=message,
            updated_at=now,
            finished_at=now if status in TERMINAL_WORKFLOW else None,
        )
    )


def set_finishing(conn: Connection, workflow_id: int, now: float) -> None:
    conn.execute(
        sa.update(workflows)
        .where(workflows.c.id == workflow_id)
        .values(finishing=True, updated_at=now)
    )


def close(conn: Connection, workflow_id: int, error: str | None, now: float) -> bool:
    """No more works will be added to an open workflow; ``error``: it failed, and why.

    False if it was not open (closed already, or never open). Wakes the clerk, which
    ends the workflow once its works have ended (or fails it, given an error).
    """
    res = conn.execute(
        sa.update(workflows)
        .where(workflows.c.id == workflow_id, workflows.c.open)
        .values(open=False, close_error=error, updated_at=now, wake_seq=workflows.c.wake_seq + 1)
    )
    return res.rowcount == 1


def is_open(conn: Connection, workflow_id: int) -> bool:
    """Does the workflow take more works (submitted ``open`` and not closed yet)?"""
    q = sa.select(workflows.c.open).where(workflows.c.id == workflow_id)
    return bool(conn.execute(q).scalar())


def lock_status(conn: Connection, workflow_id: int) -> WorkflowStatus:
    """The workflow's status, with its row locked until the transaction ends (PostgreSQL;
    SQLite has one writer at a time anyway), so that changes to its template take turns."""
    q = sa.select(workflows.c.status).where(workflows.c.id == workflow_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"no workflow {workflow_id}; `orchid status` lists the workflows")
    return WorkflowStatus(row.status)


def set_template(
    conn: Connection, workflow_id: int, template: Mapping[str, Any], now: float
) -> None:
    """Replace the template of a workflow that grows (works added while it runs)."""
    conn.execute(
        sa.update(workflows)
        .where(workflows.c.id == workflow_id)
        .values(template=dict(template), updated_at=now)
    )


def save_loops(
    conn: Connection, workflow_id: int, loops: Mapping[str, LoopState], now: float
) -> None:
    conn.execute(
        sa.update(workflows)
        .where(workflows.c.id == workflow_id)
        .values(loops={k: v.to_json() for k, v in loops.items()}, updated_at=now)
    )


def _to_model(r: Any) -> Workflow:
    return Workflow(
        id=r.id,
        name=r.name,
        owner=r.owner,
        status=WorkflowStatus(r.status),
        message=r.message,
        params=r.params,
        created_at=r.created_at,
        updated_at=r.updated_at,
        finished_at=r.finished_at,
        share_group=r.share_group,
        # writing: still whole; deleting, archived, restoring: read from the summary
        archived_at=r.archived_at if r.archive_state not in (None, "writing") else None,
    )


_COLUMNS = (
    workflows.c.id,
    workflows.c.name,
    workflows.c.owner,
    workflows.c.status,
    workflows.c.message,
    workflows.c.params,
    workflows.c.created_at,
    workflows.c.updated_at,
    workflows.c.finished_at,
    workflows.c.share_group,
    workflows.c.archive_state,
    workflows.c.archived_at,
)


def get(conn: Connection, workflow_id: int) -> Workflow:
    row = conn.execute(sa.select(*_COLUMNS).where(workflows.c.id == workflow_id)).first()
    if row is None:
        raise NotFound(f"no workflow {workflow_id}; `orchid status` lists the workflows")
    return _to_model(row)


def list_recent(
    conn: Connection,
    *,
    status: Sequence[str] = (),
    owner: str | None = None,
    name: str | None = None,
    since: float | None = None,
    before_id: int | None = None,
    visible_to: tuple[str, frozenset[str]] | None = None,
    limit: int = 50,
) -> list[Workflow]:
    """Newest first. ``before_id`` pages (a cursor); ``visible_to`` = (user, groups) keeps
    the workflows that user owns or that are shared with one of the groups."""
    q = sa.select(*_COLUMNS).order_by(workflows.c.id.desc()).limit(limit)
    if status:
        q = q.where(workflows.c.status.in_(status))
    if owner is not None:
        q = q.where(workflows.c.owner == owner)
    if name is not None:
        q = q.where(workflows.c.name == name)
    if since is not None:
        q = q.where(workflows.c.created_at >= since)
    if before_id is not None:
        q = q.where(workflows.c.id < before_id)
    if visible_to is not None:
        user, groups = visible_to
        q = q.where(sa.or_(workflows.c.owner == user, workflows.c.share_group.in_(sorted(groups))))
    return [_to_model(r) for r in conn.execute(q)]
