"""The carrier's rows: claiming ready jobs, recording what executors saw, leases of jobs in flight.

These run for every job, so they are written for batches: one statement of fixed text per
claim, one ``executemany`` on the driver's cursor per kind of update (see ``store.bulk``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.model import NO_USAGE, JobUpdate, Usage
from orchid.core.retry import NO_RETRY, RetryPolicy
from orchid.core.states import TERMINAL_JOB, JobStatus, after_failure
from orchid.store import bulk, claims, release
from orchid.store.release import Propagation
from orchid.store.tables import IN_FLIGHT, READY, jobs, workflows, works

J = JobStatus

_CLAIM = """
UPDATE jobs SET status = 'submitted', owner = :owner, lease_until = :until,
    attempt = attempt + 1, submitted_at = :now
WHERE id IN (
    SELECT id FROM jobs
    WHERE {ready} AND not_before <= :now
      AND +workflow_id IN (SELECT id FROM workflows WHERE status = 'running')
    ORDER BY not_before, id LIMIT :n {lock})
RETURNING id, workflow_id, work_id, name, args, attempt
"""
_CURRENT = "SELECT id, attempt, status, max_attempts FROM jobs WHERE {ids}"
# What executors saw, applied with one statement per kind of update: the rows travel as
# one JSON array (``json_each`` / ``json_array_elements``), which is twice as fast as a
# statement per row. ``{i}``/``{f}``/``{t}``/``{j}`` read element N as an integer, a
# float, text or JSON; the WHERE guards make a stale report (an older attempt, a job no
# longer in flight) change nothing.
_STARTED = """
UPDATE jobs SET status = 'running', started_at = {f2}, log_uri = coalesce({t3}, jobs.log_uri)
FROM {rows} WHERE jobs.id = {i0} AND jobs.attempt = {i1} AND jobs.status = 'submitted'
"""
_SUCCEEDED = """
UPDATE jobs SET status = 'succeeded', exit_code = {i2}, result = {j3}, usage = {j4},
    log_uri = coalesce({t5}, jobs.log_uri), started_at = coalesce({f6}, jobs.started_at),
    finished_at = {f7}, owner = NULL, lease_until = NULL, error = NULL{passed}
FROM {rows} WHERE jobs.id = {i0} AND jobs.attempt = {i1} AND jobs.status IN ('submitted', 'running')
RETURNING jobs.id, jobs.work_id, jobs.workflow_id, jobs.status, jobs.finished_at
"""
_UNPASSED = "UPDATE jobs SET propagated = FALSE WHERE {ids}"
_FAILED = """
UPDATE jobs SET status = {t2}, exit_code = {i3}, result = {j4}, usage = {j5},
    log_uri = coalesce({t6}, jobs.log_uri), started_at = coalesce({f7}, jobs.started_at),
    error = {t8}, not_before = {f9}, finished_at = {f10}, ready_at = {f11},
    owner = NULL, lease_until = NULL
FROM {rows} WHERE jobs.id = {i0} AND jobs.attempt = {i1} AND jobs.status IN ('submitted', 'running')
"""


@lru_cache(maxsize=8)
def _rows_sql(template: str, pg: bool, passed: bool = False) -> str:
    rows = "json_array_elements(CAST(:rows AS JSON)) AS u(value)" if pg else "json_each(:rows) AS u"
    names = {"rows": rows, "passed": ", propagated = TRUE" if passed else ""}
    for i in range(12):
        value = f"(u.value ->> {i})"
        names[f"i{i}"] = f"CAST(u.value ->> {i} AS INTEGER)"
        names[f"f{i}"] = f"CAST(u.value ->> {i} AS DOUBLE PRECISION)"
        names[f"t{i}"] = value
        names[f"j{i}"] = f"CAST(u.value ->> {i} AS JSON)" if pg else value
    return template.format(**names)


class Claimed(NamedTuple):
    """A job the carrier took, to hand to its executor."""

    id: int
    workflow_id: int
    work_id: int
    name: str
    args: Mapping[str, Any]
    attempt: int


def claim_ready(
    conn: Connection,
    owner: str,
    now: float,
    lease: float,
    limit: int,
    where: sa.ColumnElement[bool] | None = None,
) -> list[Claimed]:
    """Take ready jobs of running workflows: status → submitted, attempt + 1.

    In id order. On PostgreSQL, rows another agent is claiming are skipped, not waited for.
    ``where`` narrows the jobs further (a carrier's executor route, see ``store.routes``):
    only agents with several executors pass one, and take the slower general statement.
    """
    if where is not None:
        return _claim_where(conn, owner, now, lease, limit, where)
    sql = _claim_sql(bulk.is_pg(conn))
    rows = bulk.fetch(conn, sql, {"owner": owner, "until": now + lease, "now": now, "n": limit})
    value = bulk.json_value
    out = [Claimed(r[0], r[1], r[2], r[3], value(r[4]), r[5]) for r in rows]
    out.sort()
    return out


def _claim_where(
    conn: Connection,
    owner: str,
    now: float,
    lease: float,
    limit: int,
    where: sa.ColumnElement[bool],
) -> list[Claimed]:
    running = sa.select(workflows.c.id).where(workflows.c.status == "running")
    select = sa.select(jobs.c.id).where(
        sa.text(READY), jobs.c.not_before <= now, jobs.c.workflow_id.in_(running), where
    )
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
    return sorted(Claimed(*r) for r in conn.execute(stmt))


@lru_cache(maxsize=2)
def _claim_sql(pg: bool) -> str:
    # `+workflow_id`: no index on that term, so the ready index gives the order (never sort
    # all the ready jobs of a workflow to take a batch)
    return _CLAIM.format(lock="FOR NO KEY UPDATE SKIP LOCKED" if pg else "", ready=READY)


def work_names(conn: Connection, work_ids: Iterable[int]) -> dict[int, str]:
    rows = conn.execute(sa.select(works.c.id, works.c.name).where(works.c.id.in_(set(work_ids))))
    return {int(r.id): str(r.name) for r in rows}


def workflow_owners(
    conn: Connection, workflow_ids: Iterable[int]
) -> dict[int, tuple[str, str | None]]:
    """Workflow id → (owner, share group): whose jobs they are."""
    q = sa.select(workflows.c.id, workflows.c.owner, workflows.c.share_group).where(
        workflows.c.id.in_(set(workflow_ids))
    )
    return {int(r.id): (str(r.owner), r.share_group) for r in conn.execute(q)}


def record_updates(
    conn: Connection,
    updates: Sequence[JobUpdate],
    policies: Mapping[int, RetryPolicy],
    now: float,
) -> tuple[int, int]:
    """Apply what executors saw. Stale updates (an older attempt, a cancelled job) are ignored.

    ``policies`` gives each failed job's retry policy (job id → its work's; the delay
    before it runs again; the attempts come from the job's row). Returns (finished, retried).
    """
    recorded = record(conn, updates, policies, now)
    return recorded.finished, recorded.retried


@dataclass
class Recorded:
    """What one :func:`record` did."""

    finished: int = 0
    retried: int = 0
    passed: Propagation = field(default_factory=Propagation)  # successes passed on


def record(
    conn: Connection,
    updates: Sequence[JobUpdate],
    policies: Mapping[int, RetryPolicy],
    now: float,
    *,
    pass_on: bool = False,
    clock: Callable[[], float] | None = None,
    ended: bool = False,
) -> Recorded:
    """:func:`record_updates`; with ``pass_on``, also release the children of the jobs that
    succeeded, in this transaction (the trigger's work, without a second write of each
    job and a second transaction); ``clock`` stamps the children (see release.pass_on).
    Failures are always left to the trigger."""
    if not updates:
        return Recorded()
    current: dict[int, tuple[int, str, int]] = {}
    wanted = sorted({u.job_id for u in updates})
    sql = _CURRENT.format(ids=bulk.in_ids(conn, "id"))
    for i in range(0, len(wanted), 50_000):
        for jid, attempt, status, max_attempts in bulk.fetch(
            conn, sql, {"ids": bulk.ids(conn, wanted[i : i + 50_000])}
        ):
            current[jid] = (attempt, status, max_attempts)

    started: list[tuple[Any, ...]] = []
    ok: list[tuple[Any, ...]] = []
    bad: list[tuple[Any, ...]] = []  # each row: its values in the order the statement reads
    retried = 0
    active = (J.SUBMITTED.value, J.RUNNING.value)
    for u in updates:
        row = current.get(u.job_id)
        # stale reports (an older attempt, a job cancelled meanwhile) change and count nothing
        if row is None or row[0] != u.attempt or row[1] not in active:
            continue
        if u.state == "running":
            started.append((u.job_id, u.attempt, u.at, u.log_uri))
            continue
        result = None if u.result is None else bulk.json_text(u.result)
        usage = _usage_json(u.usage)
        if u.state == "succeeded":
            ok.append(
                (u.job_id, u.attempt, u.exit_code, result, usage, u.log_uri, u.started_at, u.at)
            )
            continue
        policy = policies.get(u.job_id, NO_RETRY)
        status, not_before = after_failure(u.attempt, row[2], policy, now)
        again = status == J.READY
        retried += again
        bad.append(
            (
                u.job_id,
                u.attempt,
                status.value,
                u.exit_code,
                result,
                usage,
                u.log_uri,
                u.started_at,
                u.error,
                not_before,
                None if again else u.at,
                not_before if again else None,
            )
        )
    pg = bulk.is_pg(conn)
    out = Recorded(finished=len(bad) - retried, retried=retried)
    if started:
        stmt = bulk.text(conn, _rows_sql(_STARTED, pg), arrays=())
        conn.execute(stmt, {"rows": bulk.json_text(started)})
    if ok:
        # RETURNING: exactly the jobs this statement moved (a stale one is not among them)
        done = bulk.fetch(conn, _rows_sql(_SUCCEEDED, pg, pass_on), {"rows": bulk.json_text(ok)})
        out.finished += len(done)
        if pass_on:
            out.passed = release.pass_on(conn, done, now, clock, ended=ended)
            if out.passed.deferred:  # their works are locked too long: the trigger's
                sql = _UNPASSED.format(ids=bulk.in_ids(conn, "id"))
                conn.execute(bulk.text(conn, sql), {"ids": bulk.ids(conn, out.passed.deferred)})
    if bad:
        stmt = bulk.text(conn, _rows_sql(_FAILED, pg), arrays=())
        conn.execute(stmt, {"rows": bulk.json_text(bad)})
    return out


def _usage_json(usage: Usage | None) -> str | None:
    """The usage column: NULL when the executor measured nothing (all zeros)."""
    if usage is None or usage is NO_USAGE or usage == NO_USAGE:
        return None
    return bulk.json_text(
        {
            "wall_s": usage.wall_s,
            "cpu_user_s": usage.cpu_user_s,
            "cpu_system_s": usage.cpu_system_s,
            "max_rss_kb": usage.max_rss_kb,
        }
    )


def renew(conn: Connection, owner: str, now: float, lease: float) -> None:
    """Keep the leases of the jobs this carrier is running."""
    conn.execute(
        bulk.text(conn, f"UPDATE jobs SET lease_until = :until WHERE {IN_FLIGHT} AND owner = :o"),
        {"until": now + lease, "o": owner},
    )


def reclaim_lost(conn: Connection, now: float, where: sa.ColumnElement[bool] | None = None) -> int:
    """Jobs whose carrier died (lease expired) run again; the lost attempt costs no retry.

    ``where`` narrows it to a carrier's own executor (see ``store.routes``).
    """
    if where is not None:
        return _reclaim_where(conn, now, where)
    lost = f"{IN_FLIGHT} AND lease_until < :now"
    conn.execute(
        bulk.text(
            conn,
            "UPDATE jobs SET status = 'cancelled', finished_at = :now, owner = NULL, "
            f"lease_until = NULL, error = 'cancelled' WHERE {lost} AND cancel_requested",
        ),
        {"now": now},
    )
    res = conn.execute(
        bulk.text(
            conn,
            "UPDATE jobs SET status = 'ready', ready_at = :now, owner = NULL, lease_until = NULL, "
            "max_attempts = max_attempts + 1, error = 'its agent stopped; run again' "
            f"WHERE {lost}",
        ),
        {"now": now},
    )
    return int(res.rowcount)


def _reclaim_where(conn: Connection, now: float, where: sa.ColumnElement[bool]) -> int:
    lost = sa.and_(sa.text(IN_FLIGHT), jobs.c.lease_until < now, where)
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
    if not ids:
        return
    stmt = bulk.text(
        conn,
        "UPDATE jobs SET status = 'ready', ready_at = :now, owner = NULL, lease_until = NULL, "
        "max_attempts = max_attempts + 1, error = 'the executor refused it; run again' "
        f"WHERE {bulk.in_ids(conn, 'id')} AND owner = :owner AND status = 'submitted'",
    )
    conn.execute(stmt, {"ids": bulk.ids(conn, ids), "now": now, "owner": owner})


def to_cancel(conn: Connection, owner: str) -> list[tuple[int, int, int]]:
    """(job id, attempt, workflow id) of this carrier's jobs whose cancellation was asked."""
    rows = conn.execute(
        bulk.text(
            conn,
            "SELECT id, attempt, workflow_id FROM jobs "
            f"WHERE {IN_FLIGHT} AND owner = :o AND cancel_requested",
        ),
        {"o": owner},
    )
    return [(int(r.id), int(r.attempt), int(r.workflow_id)) for r in rows]


def mark_cancelled(conn: Connection, ids: Sequence[int], now: float) -> None:
    if not ids:
        return
    final = ", ".join(f"'{s}'" for s in sorted(TERMINAL_JOB))
    stmt = bulk.text(
        conn,
        "UPDATE jobs SET status = 'cancelled', finished_at = :now, owner = NULL, "
        f"lease_until = NULL, error = 'cancelled' WHERE {bulk.in_ids(conn, 'id')} "
        f"AND status NOT IN ({final})",
    )
    conn.execute(stmt, {"ids": bulk.ids(conn, ids), "now": now})


def give_back(conn: Connection, owner: str, now: float, *, keep_attempt: bool) -> int:
    """A carrier that stops cleanly hands its jobs in flight back at once, instead of
    holding them until their leases run out (how many it gave back).

    ``keep_attempt`` (an executor whose jobs outlive their agent): the leases just end, so
    the next carrier adopts the attempts where they run. Otherwise their processes were
    stopped with the executor: they are ready again, and the stopped attempt costs no retry
    (as after ``reclaim_lost``); those whose cancellation was asked are cancelled.
    """
    mine = f"{IN_FLIGHT} AND owner = :o"
    if keep_attempt:
        res = conn.execute(
            bulk.text(conn, f"UPDATE jobs SET lease_until = :now WHERE {mine}"),
            {"now": now, "o": owner},
        )
        return int(res.rowcount)
    cancelled = conn.execute(
        bulk.text(
            conn,
            "UPDATE jobs SET status = 'cancelled', finished_at = :now, owner = NULL, "
            f"lease_until = NULL, error = 'cancelled' WHERE {mine} AND cancel_requested",
        ),
        {"now": now, "o": owner},
    )
    res = conn.execute(
        bulk.text(
            conn,
            "UPDATE jobs SET status = 'ready', ready_at = :now, owner = NULL, lease_until = NULL, "
            "max_attempts = max_attempts + 1, error = 'its agent stopped; run again' "
            f"WHERE {mine}",
        ),
        {"now": now, "o": owner},
    )
    return int(cancelled.rowcount) + int(res.rowcount)
