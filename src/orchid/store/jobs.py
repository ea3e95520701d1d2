"""Job rows: the jobs of works expanded at run time, abort and retry, reading.

The hot paths have modules of their own: ``store.graph`` inserts large graphs,
``store.dispatch`` claims jobs and records what executors saw, ``store.release`` passes
ended jobs on to their children.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.model import Job
from orchid.core.states import ACTIVE_JOB, TERMINAL_JOB, JobStatus
from orchid.errors import NotFound
from orchid.store import bulk
from orchid.store.tables import job_edges, jobs, works

__all__ = [
    "cancel_workflow",
    "ended_ids",
    "get",
    "get_many",
    "insert_ready",
    "list_for",
    "merge_args",
    "release_roots",
    "reopen_failed",
    "unpropagated",
]

J = JobStatus
BATCH = 2000


def _chunks(items: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


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


# Listed jobs get their work's bound parameters when the work starts (a job's own args
# win), in one statement over the work's jobs, whatever their number. The parameters come
# as one JSON array of [name, value as JSON text] pairs, so no value is re-encoded; a
# job's own args keep their stored text. SQLite: the parameters the job lacks become an
# object that is joined to the job's args as text (their keys are disjoint).
_MISSING_SQLITE = (
    "SELECT json_group_object(p.value ->> 0, json(p.value ->> 1)) FROM json_each(:pairs) AS p "
    "WHERE NOT EXISTS (SELECT 1 FROM json_each(jobs.args) AS a WHERE a.key = p.value ->> 0)"
)
_MERGE_SQLITE = f"""
UPDATE jobs SET args = (
  SELECT CASE WHEN m.o = '{{}}' THEN jobs.args
              WHEN json(jobs.args) = '{{}}' THEN m.o
              ELSE substr(m.o, 1, length(m.o) - 1) || ',' || substr(json(jobs.args), 2) END
  FROM (SELECT coalesce(({_MISSING_SQLITE}), '{{}}') AS o) AS m)
WHERE work_id = :work
"""
_MERGE_PG = """
UPDATE jobs SET args = (
  SELECT json_object_agg(m.k, m.v) FROM (
    SELECT p.value ->> 0 AS k, CAST(p.value ->> 1 AS JSON) AS v
    FROM json_array_elements(CAST(:pairs AS JSON)) AS p(value)
    WHERE NOT EXISTS (SELECT 1 FROM json_each(jobs.args) AS a WHERE a.key = p.value ->> 0)
    UNION ALL SELECT a.key, a.value FROM json_each(jobs.args) AS a) AS m)
WHERE work_id = :work
"""


def merge_args(conn: Connection, work_id: int, parameters: Mapping[str, Any]) -> int:
    """Give every job of a listed work the work's ``parameters`` it does not set itself.

    What a map does for its jobs (``{**parameters, **item}``), done in the database for
    listed jobs, which were written at submission, before the parameters were bound.
    Returns the rows changed.
    """
    if not parameters:
        return 0
    pairs = bulk.json_text([[k, bulk.json_text(v)] for k, v in parameters.items()])
    sql = _MERGE_PG if bulk.is_pg(conn) else _MERGE_SQLITE
    res = conn.execute(bulk.text(conn, sql), {"pairs": pairs, "work": work_id})
    return int(res.rowcount)


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
