"""Job rows: insertion of large graphs, the carrier's claims, results, and set-based release.

Release is the hot path of a million-job DAG: the trigger takes a batch of jobs
that ended, and one statement decrements the unfinished-parent counts of all
their children, one more marks those at zero ``ready``. The cost is the edges
leaving the batch, never the size of the graph.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from orchid.core.jobs import JobDraft
from orchid.core.model import Job, JobUpdate
from orchid.core.states import (
    ACTIVE_JOB,
    TERMINAL_JOB,
    JobStatus,
    WorkflowStatus,
    WorkStatus,
    after_failure,
)
from orchid.errors import NotFound
from orchid.store import claims
from orchid.store.tables import job_edges, jobs, works

J = JobStatus
BATCH = 2000


def _chunks(items: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def insert_static(
    conn: Connection,
    workflow_id: int,
    work_ids: Mapping[str, int],
    drafts: Iterable[JobDraft],
    max_attempts: Mapping[str, int],
) -> Counter[int]:
    """Insert listed jobs (parents first) in ``waiting`` with their edges; count per work."""
    ids: dict[tuple[str, str], int] = {}
    per_work: Counter[int] = Counter()
    batch: list[JobDraft] = []

    def flush() -> None:
        rows = [
            {
                "workflow_id": workflow_id,
                "work_id": work_ids[d.work],
                "name": d.name,
                "status": J.WAITING,
                "args": dict(d.args),
                "pending_parents": len(d.parents),
                "max_attempts": max_attempts[d.work],
            }
            for d in batch
        ]
        new = conn.execute(
            sa.insert(jobs).returning(jobs.c.id, sort_by_parameter_order=True), rows
        ).scalars()
        for d, jid in zip(batch, new, strict=True):
            ids[(d.work, d.name)] = int(jid)
            per_work[work_ids[d.work]] += 1
        edges = [
            {"parent_id": ids[p], "child_id": ids[(d.work, d.name)]}
            for d in batch
            for p in d.parents
        ]
        if edges:
            conn.execute(sa.insert(job_edges), edges)
        batch.clear()

    for draft in drafts:
        batch.append(draft)
        # a parent must have its id before its children are written
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return per_work


def insert_ready(
    conn: Connection,
    workflow_id: int,
    work_id: int,
    args: Sequence[Mapping[str, Any]],
    max_attempts: int,
    now: float,
) -> int:
    """Insert the jobs of a work expanded at run time, ready at once (they have no parents)."""
    for start, chunk in ((i, args[i : i + BATCH]) for i in range(0, len(args), BATCH)):
        conn.execute(
            sa.insert(jobs),
            [
                {
                    "workflow_id": workflow_id,
                    "work_id": work_id,
                    "name": str(start + k),
                    "status": J.READY,
                    "args": dict(a),
                    "max_attempts": max_attempts,
                    "ready_at": now,
                }
                for k, a in enumerate(chunk)
            ],
        )
    return len(args)


def release_roots(conn: Connection, work_id: int, now: float) -> int:
    """A listed work starts: its jobs with no unfinished parent become ready."""
    res = conn.execute(
        sa.update(jobs)
        .where(jobs.c.work_id == work_id, jobs.c.status == J.WAITING, jobs.c.pending_parents == 0)
        .values(status=J.READY, ready_at=now)
    )
    return int(res.rowcount)


def unpropagated(conn: Connection, work_id: int) -> int:
    """Jobs of a work the trigger has still to count off: running ones, and ended ones
    whose end it has not passed on yet (a work's ``remaining``)."""
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(jobs)
            .where(jobs.c.work_id == work_id, sa.not_(jobs.c.propagated))
        ).scalar_one()
    )


# --- the carrier -------------------------------------------------------------------------


def claim_ready(
    conn: Connection,
    owner: str,
    now: float,
    lease: float,
    limit: int,
    where: sa.ColumnElement[bool] | None = None,
) -> list[Row[Any]]:
    """Take ready jobs of running workflows: status → submitted, attempt + 1.

    ``where`` narrows the jobs further (a carrier's executor route, see ``store.routes``).
    """
    from orchid.store.tables import workflows

    running = sa.select(workflows.c.id).where(workflows.c.status == WorkflowStatus.RUNNING)
    select = sa.select(jobs.c.id).where(
        jobs.c.status == J.READY, jobs.c.not_before <= now, jobs.c.workflow_id.in_(running)
    )
    if where is not None:
        select = select.where(where)
    ids = claims.pick(conn, select.order_by(jobs.c.not_before, jobs.c.id).limit(limit))
    stmt = (
        sa.update(jobs)
        .where(jobs.c.id.in_(ids.scalar_subquery()))
        .values(
            status=J.SUBMITTED,
            owner=owner,
            lease_until=now + lease,
            attempt=jobs.c.attempt + 1,
            submitted_at=now,
        )
        .returning(
            jobs.c.id, jobs.c.workflow_id, jobs.c.work_id, jobs.c.name, jobs.c.args, jobs.c.attempt
        )
    )
    return sorted(conn.execute(stmt), key=lambda r: r.id)


def work_names(conn: Connection, work_ids: Iterable[int]) -> dict[int, str]:
    rows = conn.execute(sa.select(works.c.id, works.c.name).where(works.c.id.in_(set(work_ids))))
    return {int(r.id): str(r.name) for r in rows}


def record_updates(
    conn: Connection, updates: Sequence[JobUpdate], delays: Mapping[int, float], now: float
) -> tuple[int, int]:
    """Apply what executors saw. Stale updates (an older attempt, a cancelled job) are ignored.

    ``delays`` gives each failed job's retry delay. Returns (finished, retried).
    """
    active = [J.SUBMITTED, J.RUNNING]
    current = {
        int(r.id): r
        for chunk in _chunks(sorted({u.job_id for u in updates}))
        for r in conn.execute(
            sa.select(jobs.c.id, jobs.c.attempt, jobs.c.status, jobs.c.max_attempts).where(
                jobs.c.id.in_(chunk)
            )
        )
    }

    def live(u: JobUpdate) -> bool:
        row = current.get(u.job_id)
        return row is not None and row.attempt == u.attempt and row.status in active

    # stale reports (an older attempt, a job cancelled meanwhile) change and count nothing
    started = [u for u in updates if u.state == "running" and live(u)]
    ok = [u for u in updates if u.state == "succeeded" and live(u)]
    bad = [u for u in updates if u.state == "failed" and live(u)]
    guard = sa.and_(
        jobs.c.id == sa.bindparam("jid"),
        jobs.c.attempt == sa.bindparam("att"),
        sa.or_(*(jobs.c.status == s for s in active)),  # no expanding IN with executemany
    )
    if started:
        conn.execute(
            sa.update(jobs)
            .where(guard, jobs.c.status == J.SUBMITTED)
            .values(
                status=J.RUNNING,
                started_at=sa.bindparam("at"),
                # the log of a running job can be read while it grows
                log_uri=sa.func.coalesce(sa.bindparam("log", type_=sa.Text), jobs.c.log_uri),
            ),
            [{"jid": u.job_id, "att": u.attempt, "at": u.at, "log": u.log_uri} for u in started],
        )
    if ok:
        conn.execute(
            sa.update(jobs)
            .where(guard)
            .values(
                status=J.SUCCEEDED,
                exit_code=sa.bindparam("code"),
                result=sa.bindparam("res"),
                usage=sa.bindparam("use"),
                log_uri=sa.bindparam("log"),
                finished_at=sa.bindparam("at"),
                owner=None,
                lease_until=None,
                error=None,
            ),
            [_finish_params(u) for u in ok],
        )
    retried = 0
    if bad:
        params = []
        for u in bad:
            status, not_before = after_failure(
                u.attempt, current[u.job_id].max_attempts, delays.get(u.job_id, 1.0), now
            )
            retried += status == J.READY
            params.append(
                {
                    **_finish_params(u),
                    "st": status,
                    "nb": not_before,
                    "fin": u.at if status == J.FAILED else None,
                    "err": u.error,
                }
            )
        conn.execute(
            sa.update(jobs)
            .where(guard)
            .values(
                status=sa.bindparam("st"),
                exit_code=sa.bindparam("code"),
                result=sa.bindparam("res"),
                usage=sa.bindparam("use"),
                log_uri=sa.bindparam("log"),
                error=sa.bindparam("err"),
                not_before=sa.bindparam("nb"),
                finished_at=sa.bindparam("fin"),
                ready_at=sa.case((sa.bindparam("st") == J.READY, sa.bindparam("nb")), else_=None),
                owner=None,
                lease_until=None,
            ),
            params,
        )
    return len(ok) + len(bad) - retried, retried


def _finish_params(u: JobUpdate) -> dict[str, Any]:
    usage = None
    if u.usage is not None:
        usage = {
            "wall_s": u.usage.wall_s,
            "cpu_user_s": u.usage.cpu_user_s,
            "cpu_system_s": u.usage.cpu_system_s,
            "max_rss_kb": u.usage.max_rss_kb,
        }
    return {
        "jid": u.job_id,
        "att": u.attempt,
        "code": u.exit_code,
        "res": u.result,
        "use": usage,
        "log": u.log_uri,
        "at": u.at,
    }


def renew(conn: Connection, owner: str, now: float, lease: float) -> None:
    """Keep the leases of the jobs this carrier is running."""
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.owner == owner, jobs.c.status.in_(list(ACTIVE_JOB)))
        .values(lease_until=now + lease)
    )


def reclaim_lost(conn: Connection, now: float, where: sa.ColumnElement[bool] | None = None) -> int:
    """Jobs whose carrier died (lease expired) run again; the lost attempt costs no retry.

    ``where`` narrows it to a carrier's own executor (see ``store.routes``).
    """
    lost = sa.and_(jobs.c.status.in_(list(ACTIVE_JOB)), jobs.c.lease_until < now)
    if where is not None:
        lost = sa.and_(lost, where)
    conn.execute(
        sa.update(jobs)
        .where(lost, jobs.c.cancel_requested)
        .values(
            status=J.CANCELLED, finished_at=now, owner=None, lease_until=None, error="cancelled"
        )
    )
    res = conn.execute(
        sa.update(jobs)
        .where(lost)
        .values(
            status=J.READY,
            ready_at=now,
            owner=None,
            lease_until=None,
            max_attempts=jobs.c.max_attempts + 1,
            error="its agent stopped; run again",
        )
    )
    return int(res.rowcount)


def unsubmit(conn: Connection, ids: Sequence[int], owner: str, now: float) -> None:
    """The executor refused these jobs: ready again, and the refused attempt costs nothing."""
    for chunk in _chunks(ids):
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id.in_(chunk), jobs.c.owner == owner, jobs.c.status == J.SUBMITTED)
            .values(
                status=J.READY,
                ready_at=now,
                owner=None,
                lease_until=None,
                max_attempts=jobs.c.max_attempts + 1,
                error="the executor refused it; run again",
            )
        )


def to_cancel(conn: Connection, owner: str) -> list[tuple[int, int, int]]:
    """(job id, attempt, workflow id) of this carrier's jobs whose cancellation was asked."""
    rows = conn.execute(
        sa.select(jobs.c.id, jobs.c.attempt, jobs.c.workflow_id).where(
            jobs.c.owner == owner, jobs.c.cancel_requested, jobs.c.status.in_(list(ACTIVE_JOB))
        )
    )
    return [(int(r.id), int(r.attempt), int(r.workflow_id)) for r in rows]


def mark_cancelled(conn: Connection, ids: Sequence[int], now: float) -> None:
    for chunk in _chunks(ids):
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id.in_(chunk), jobs.c.status.not_in(list(TERMINAL_JOB)))
            .values(
                status=J.CANCELLED, finished_at=now, owner=None, lease_until=None, error="cancelled"
            )
        )


def cancel_workflow(conn: Connection, workflow_id: int, now: float) -> None:
    """Abort: jobs not started are cancelled now; running ones are asked to stop."""
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.workflow_id == workflow_id, jobs.c.status.in_([J.WAITING, J.READY]))
        .values(status=J.CANCELLED, finished_at=now, error="aborted by the user")
    )
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.workflow_id == workflow_id, jobs.c.status.in_(list(ACTIVE_JOB)))
        .values(cancel_requested=True)
    )


# --- the trigger ----------------------------------------------------------------------------


@dataclass
class Propagation:
    """What one trigger batch did."""

    jobs: int = 0
    released: int = 0
    skipped: int = 0
    remaining: Counter[int] = field(default_factory=Counter)  # work id → jobs that ended
    workflows: set[int] = field(default_factory=set)
    ended_at: list[float] = field(default_factory=list)  # when the succeeded ones ended
    ended: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # if asked for


def propagate(conn: Connection, now: float, limit: int, ended: bool = False) -> Propagation:
    """Pass the end of a batch of jobs on to their children and their works.

    ``ended``: also list the batch's jobs, (id, status) per workflow (for job notifications).
    """
    rows = list(
        conn.execute(
            claims.pick(
                conn,
                sa.select(
                    jobs.c.id, jobs.c.work_id, jobs.c.workflow_id, jobs.c.status, jobs.c.finished_at
                )
                .where(sa.not_(jobs.c.propagated), jobs.c.status.in_(list(TERMINAL_JOB)))
                .order_by(jobs.c.id)
                .limit(limit),
            )
        )
    )
    out = Propagation(jobs=len(rows))
    if not rows:
        return out
    ids = [r.id for r in rows]
    good = [r.id for r in rows if r.status == J.SUCCEEDED]
    out.ended_at = [r.finished_at for r in rows if r.status == J.SUCCEEDED and r.finished_at]
    bad = [r.id for r in rows if r.status != J.SUCCEEDED]
    for r in rows:
        out.remaining[r.work_id] += 1
        out.workflows.add(r.workflow_id)
        if ended:
            out.ended.setdefault(int(r.workflow_id), []).append((int(r.id), str(r.status)))
    if good:
        out.released = _release_children(conn, good, now)
    if bad:
        children = sa.select(job_edges.c.child_id).where(job_edges.c.parent_id.in_(bad))
        res = conn.execute(
            sa.update(jobs)
            .where(jobs.c.id.in_(children), jobs.c.status == J.WAITING)
            .values(status=J.SKIPPED, finished_at=now, error="a parent job did not succeed")
        )
        out.skipped = int(res.rowcount)
    conn.execute(sa.update(jobs).where(jobs.c.id.in_(ids)).values(propagated=True))
    return out


def _release_children(conn: Connection, parents: Sequence[int], now: float) -> int:
    children = sa.select(job_edges.c.child_id).where(job_edges.c.parent_id.in_(parents))
    if conn.dialect.name == "postgresql":
        # Lock the children's works first, in the order a transformer takes them (work,
        # then its jobs): a transformer starting one of these works has committed (and we
        # see it running) or starts after us (and its release_roots sees our counts).
        work_ids = sa.select(jobs.c.work_id).where(jobs.c.id.in_(children)).distinct()
        conn.execute(
            sa.select(works.c.id)
            .where(works.c.id.in_(work_ids))
            .order_by(works.c.id)
            .with_for_update(read=True)
        )
    edges = job_edges.alias("e")
    from_batch = (
        sa.select(sa.func.count())
        .select_from(edges)
        .where(edges.c.child_id == jobs.c.id, edges.c.parent_id.in_(parents))
        .scalar_subquery()
    )
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.id.in_(children))
        .values(pending_parents=jobs.c.pending_parents - from_batch)
    )
    running = sa.select(works.c.id).where(works.c.status == WorkStatus.RUNNING)
    res = conn.execute(
        sa.update(jobs)
        .where(
            jobs.c.id.in_(children),
            jobs.c.status == J.WAITING,
            jobs.c.pending_parents == 0,
            jobs.c.work_id.in_(running),
        )
        .values(status=J.READY, ready_at=now)
    )
    return int(res.rowcount)


def reopen_failed(
    conn: Connection,
    workflow_id: int,
    extra_attempts: Mapping[int, int],
    work_ids: Sequence[int],
) -> Counter[int]:
    """Retry: failed jobs are ready again with fresh attempts; jobs skipped behind them wait.

    ``extra_attempts`` maps work id → attempts granted. Returns, per work, how many
    jobs its ``remaining`` must count again: only those the trigger had already
    counted off (a job whose end was not passed on yet is still counted).
    """
    again: Counter[int] = Counter()
    for status in (J.FAILED, J.SKIPPED):
        select = sa.select(jobs.c.id, jobs.c.work_id, jobs.c.propagated).where(
            jobs.c.workflow_id == workflow_id,
            jobs.c.status == status,
            jobs.c.work_id.in_(work_ids),
        )
        if conn.dialect.name == "postgresql":
            select = select.with_for_update()  # the trigger must not pass them on meanwhile
        rows = list(conn.execute(select))
        for r in rows:
            again[r.work_id] += bool(r.propagated)
        for chunk in _chunks([r.id for r in rows]):
            if status == J.FAILED:
                conn.execute(
                    sa.update(jobs)
                    .where(jobs.c.id.in_(chunk))
                    .values(
                        status=J.READY,
                        max_attempts=jobs.c.attempt + _granted(extra_attempts),
                        not_before=0,
                        propagated=False,
                        error=None,
                        exit_code=None,
                        finished_at=None,
                    )
                )
            else:
                conn.execute(
                    sa.update(jobs)
                    .where(jobs.c.id.in_(chunk))
                    .values(
                        status=J.WAITING,
                        propagated=False,
                        error=None,
                        finished_at=None,
                        pending_parents=_unfinished_parents(),
                    )
                )
    return again


def _granted(extra_attempts: Mapping[int, int]) -> sa.ColumnElement[int]:
    """Attempts granted to each job by its work, as one CASE over work ids."""
    if not extra_attempts:
        return sa.literal(1)
    return sa.case(*((jobs.c.work_id == wid, n) for wid, n in extra_attempts.items()), else_=1)


def _unfinished_parents() -> sa.ScalarSelect[int]:
    parent = jobs.alias("parent")
    return (
        sa.select(sa.func.count())
        .select_from(job_edges.join(parent, parent.c.id == job_edges.c.parent_id))
        .where(job_edges.c.child_id == jobs.c.id, parent.c.status != J.SUCCEEDED)
        .scalar_subquery()
    )


# --- reading ----------------------------------------------------------------------------------


def _to_model(r: Any, work_name: str) -> Job:
    return Job(
        id=r.id,
        workflow_id=r.workflow_id,
        work_id=r.work_id,
        work_name=work_name,
        name=r.name,
        status=JobStatus(r.status),
        args=r.args,
        attempt=r.attempt,
        max_attempts=r.max_attempts,
        exit_code=r.exit_code,
        result=r.result,
        error=r.error,
        log_uri=r.log_uri,
        usage=r.usage,
        ready_at=r.ready_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
    )


def get(conn: Connection, job_id: int) -> Job:
    row = conn.execute(
        sa.select(jobs, works.c.name.label("work_name"))
        .join(works, works.c.id == jobs.c.work_id)
        .where(jobs.c.id == job_id)
    ).first()
    if row is None:
        raise NotFound(f"no job {job_id}")
    return _to_model(row, row.work_name)


def ended_ids(conn: Connection, work_id: int) -> list[int]:
    """Ids of a work's jobs that have ended (succeeded, failed, cancelled, skipped)."""
    q = sa.select(jobs.c.id).where(jobs.c.work_id == work_id, jobs.c.status.in_(list(TERMINAL_JOB)))
    return [int(i) for i in conn.execute(q).scalars()]


def get_many(conn: Connection, job_ids: Sequence[int]) -> list[Job]:
    out: list[Job] = []
    for chunk in _chunks(sorted(job_ids)):
        q = (
            sa.select(jobs, works.c.name.label("work_name"))
            .join(works, works.c.id == jobs.c.work_id)
            .where(jobs.c.id.in_(chunk))
        )
        out.extend(_to_model(r, r.work_name) for r in conn.execute(q))
    return out


def list_for(
    conn: Connection,
    workflow_id: int,
    *,
    status: Sequence[str] = (),
    work_id: int | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[Job]:
    q = (
        sa.select(jobs, works.c.name.label("work_name"))
        .join(works, works.c.id == jobs.c.work_id)
        .where(jobs.c.workflow_id == workflow_id, jobs.c.id > after_id)
        .order_by(jobs.c.id)
        .limit(limit)
    )
    if status:
        q = q.where(jobs.c.status.in_(status))
    if work_id is not None:
        q = q.where(jobs.c.work_id == work_id)
    return [_to_model(r, r.work_name) for r in conn.execute(q)]
