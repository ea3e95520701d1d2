"""The trigger's rows: passing the end of a batch of jobs on to their children.

Release is the hot path of a million-job DAG. Each job keeps a count of unfinished
parents; for a batch of jobs that ended, one statement subtracts from each child the
number of its parents in the batch and marks those that reach zero ``ready``, one more
skips the children of those that failed, one marks the batch passed on. The cost is the
edges leaving the batch, never the size of the graph.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.states import JobStatus
from orchid.store import bulk
from orchid.store.tables import UNPROPAGATED

J = JobStatus

_ENDED = (
    "SELECT id, work_id, workflow_id, status, finished_at FROM jobs "
    f"WHERE {UNPROPAGATED} ORDER BY id LIMIT :n"
)
_CHILDREN = "SELECT child_id FROM job_edges WHERE {parents}"
# two statements, not one: the first changes no indexed column, so a child that still
# waits for other parents costs a row write and no index update
_COUNT_OFF = """
UPDATE jobs SET pending_parents = jobs.pending_parents - d.n
FROM (SELECT child_id, count(*) AS n FROM job_edges WHERE {parents} GROUP BY child_id) AS d
WHERE jobs.id = d.child_id
RETURNING jobs.id, jobs.pending_parents, jobs.status
"""
_READY = """
UPDATE jobs SET status = 'ready', ready_at = :now
WHERE {ids} AND pending_parents = 0 AND status = 'waiting'
  AND work_id IN (SELECT id FROM works WHERE status = 'running')
"""
_SKIP = (
    "UPDATE jobs SET status = 'skipped', finished_at = :now, "
    "error = 'a parent job did not succeed' "
    "WHERE id IN (SELECT child_id FROM job_edges WHERE {parents}) AND status = 'waiting'"
)
_PASSED = "UPDATE jobs SET propagated = TRUE WHERE {ids}"
# PostgreSQL: before passing jobs on, lock the works of their workflows (a handful of
# rows) in id order. Their `remaining` counts change in the same transaction, and agents
# passing on jobs of one workflow then wait for each other instead of deadlocking on
# shared children; a transformer starting a child's work has committed (and the work is
# seen running) or waits for us (and its release_roots sees our counts).
# The wait is bounded (the session's lock_timeout, see store.db.SessionLimits) and in a
# savepoint: an agent that froze holding these rows (until the server ends its session)
# makes the others leave those jobs for later, not stop (see pass_on).
_LOCK_WORKS = "SELECT id FROM works WHERE {workflows} ORDER BY id FOR NO KEY UPDATE"
_LOCK_NOT_AVAILABLE = "55P03"


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
    # the children whose last parent this was: the released ones among them (those of
    # works not started yet wait for their work)
    unblocked: list[int] = field(default_factory=list)
    woke_studies: bool = False  # trials among them: their studies have something to look at
    # jobs not passed on: another session held their works past lock_timeout; the
    # trigger passes them on in a later round (counted nowhere above)
    deferred: list[int] = field(default_factory=list)


def propagate(
    conn: Connection,
    now: float,
    limit: int,
    clock: Callable[[], float] | None = None,
    *,
    ended: bool = False,
) -> Propagation:
    """Pass the end of a batch of jobs on to their children and their works (the trigger).

    ``clock``, if given, is read again once the locks are held (see :func:`pass_on`);
    ``ended``: also list the batch's jobs, (id, status) per workflow (job notifications).
    """
    pg = bulk.is_pg(conn)
    sql = _ENDED + (" FOR UPDATE SKIP LOCKED" if pg else "")
    rows = bulk.fetch(conn, sql, {"n": limit})
    out = pass_on(conn, rows, now, clock, ended=ended)
    if rows and not out.deferred:
        sql = _PASSED.format(ids=bulk.in_ids(conn, "id"))
        conn.execute(bulk.text(conn, sql), {"ids": bulk.ids(conn, [r[0] for r in rows])})
    return out


def pass_on(
    conn: Connection,
    rows: Sequence[Sequence[Any]],
    now: float,
    clock: Callable[[], float] | None = None,
    *,
    ended: bool = False,
) -> Propagation:
    """Release or skip the children of these jobs, (id, work_id, workflow_id, status,
    finished_at) each.

    Marking them passed on is the caller's part: the trigger marks what it claimed, the
    carrier writes successes already marked (one row version instead of two). ``clock``,
    if given, stamps the children once the locks are held: on PostgreSQL an agent may
    wait here for another one passing on jobs of the same workflow, and a time read
    before the wait could make a child look ready before its last parent finished.

    On PostgreSQL, if the works of their workflows stay locked by another session for
    longer than ``lock_timeout`` (an agent frozen mid-transaction, until the server ends
    its session), none of them is passed on: they are listed in ``deferred`` and the
    caller leaves them unpropagated, for the trigger's next round. One frozen agent then
    delays the release of one workflow's children, and stops nobody.
    """
    if rows and bulk.is_pg(conn) and not _lock_works(conn, {r[2] for r in rows}):
        return Propagation(deferred=[int(r[0]) for r in rows])
    out = Propagation(jobs=len(rows))
    good: list[int] = []
    bad: list[int] = []
    for jid, work_id, workflow_id, status, finished_at in rows:
        if status == J.SUCCEEDED:
            good.append(jid)
            if finished_at is not None:
                out.ended_at.append(float(finished_at))
        else:
            bad.append(jid)
        out.remaining[work_id] += 1
        out.workflows.add(workflow_id)
        if ended:
            out.ended.setdefault(int(workflow_id), []).append((int(jid), str(status)))
    if clock is not None:
        now = max(now, clock())
    if good:
        out.released = release_children(conn, good, now, out.unblocked)
    if bad:
        sql = _SKIP.format(parents=bulk.in_ids(conn, "parent_id"))
        res = conn.execute(bulk.text(conn, sql), {"ids": bulk.ids(conn, bad), "now": now})
        out.skipped = int(res.rowcount)
    return out


def _lock_works(conn: Connection, workflows: set[int]) -> bool:
    """Lock the works of these workflows (PostgreSQL); False if another session held
    them past ``lock_timeout`` (the transaction goes on without them: a savepoint)."""
    sql = _LOCK_WORKS.format(workflows=bulk.in_ids(conn, "workflow_id"))
    # on the driver's connection, and never released (the commit does): one round trip,
    # where SQLAlchemy's begin_nested() costs two and its bookkeeping
    driver = conn.connection.driver_connection
    driver.execute("SAVEPOINT orchid_lock_works")  # type: ignore[union-attr]
    try:
        conn.execute(bulk.text(conn, sql), {"ids": bulk.ids(conn, sorted(workflows))})
    except sa.exc.OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        driver.execute("ROLLBACK TO SAVEPOINT orchid_lock_works")  # type: ignore[union-attr]
        return False
    return True


_CHILDREN = "SELECT count(*) FROM (SELECT 1 FROM job_edges WHERE {parents} LIMIT :most) c"


def children_over(conn: Connection, parents: list[int], most: int) -> bool:
    """Whether these jobs have more than ``most`` children in all (counted no further)."""
    if not parents:
        return False
    sql = _CHILDREN.format(parents=bulk.in_ids(conn, "parent_id"))
    ((n,),) = bulk.fetch(conn, sql, {"ids": bulk.ids(conn, parents), "most": most + 1})
    return int(n) > most


def release_children(
    conn: Connection, parents: list[int], now: float, unblocked: list[int] | None = None
) -> int:
    """These jobs succeeded: count them off their children; return how many became ready
    (``unblocked``, if given, gets the ids of the children that have no parent left).

    A child becomes ready when its count reaches zero while its work runs; children of a
    work that has not started yet wait for it (the transformer releases them). On
    PostgreSQL the caller holds the locks of :func:`pass_on`.
    """
    params = {"ids": bulk.ids(conn, parents), "now": now}
    where = bulk.in_ids(conn, "parent_id")
    counted = bulk.fetch(conn, _COUNT_OFF.format(parents=where), params)
    zero = [jid for jid, pending, status in counted if pending == 0 and status == J.WAITING]
    if unblocked is not None:
        unblocked.extend(zero)
    if not zero:
        return 0
    sql = _READY.format(ids=bulk.in_ids(conn, "id"))
    res = conn.execute(bulk.text(conn, sql), {"ids": bulk.ids(conn, zero), "now": now})
    return int(res.rowcount)
