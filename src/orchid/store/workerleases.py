"""The leases of Orchid workers: which attempts a worker still holds, and keeping them.

A worker leases jobs with the carrier's own claim (``store.dispatch.claim_ready``, the
worker as ``owner``) and gives them back with its ``give_back``; an expired lease is
re-run by the carriers' reclaim, as any agent's. What is a worker's own is the check
before its reports and renewals: an attempt is held while the job is in flight, its
``owner`` is the worker, its ``attempt`` the one reported and its lease has not run out
(docs/architecture.md, "Orchid workers").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy.engine import Connection

from orchid.store import bulk, dispatch, resultbytes
from orchid.store.tables import IN_FLIGHT

_MINE = f"{IN_FLIGHT} AND owner = :owner AND lease_until >= :now"
_HELD = (
    "SELECT id, attempt, work_id, workflow_id, status, max_attempts, {size} FROM jobs "
    "WHERE {ids} AND " + _MINE
)
_RENEW = "UPDATE jobs SET lease_until = :until WHERE {ids} AND " + _MINE + " RETURNING id, attempt"


class Held(NamedTuple):
    """An attempt a worker's lease holds: its row as ``dispatch.record`` reads it too."""

    job_id: int
    attempt: int
    work_id: int
    workflow_id: int
    status: str
    max_attempts: int
    result_bytes: int  # of the result it holds now (``store.resultbytes``)

    def current(self) -> dispatch.Current:
        """What :func:`dispatch.record` reads of the row (given, it need not read it again)."""
        return dispatch.Current(
            self.attempt, self.status, self.max_attempts, self.workflow_id, self.result_bytes
        )


def held(
    conn: Connection, owner: str, attempts: Sequence[tuple[int, int]], now: float
) -> dict[int, Held]:
    """Of these (job id, attempt), those ``owner``'s lease still holds, by job id.

    On PostgreSQL the rows are locked until the transaction ends, so no reclaim slips in
    between this check and what the caller records.
    """
    if not attempts:
        return {}
    sql = _HELD.format(ids=bulk.in_ids(conn, "id"), size=resultbytes.size_sql(conn))
    if bulk.is_pg(conn):
        sql += " FOR NO KEY UPDATE"
    params = {"ids": bulk.ids(conn, {j for j, _ in attempts}), "owner": owner, "now": now}
    wanted = dict(attempts)
    out: dict[int, Held] = {}
    for r in bulk.fetch(conn, sql, params):  # (the driver's cursor: a report's every step)
        if wanted.get(int(r[0])) == int(r[1]):
            out[int(r[0])] = Held(
                int(r[0]), int(r[1]), int(r[2]), int(r[3]), str(r[4]), int(r[5]), int(r[6])
            )
    return out


def renew(
    conn: Connection, owner: str, attempts: Sequence[tuple[int, int]], now: float, lease: float
) -> set[tuple[int, int]]:
    """Extend ``owner``'s leases of these (job id, attempt) that have not run out; the
    attempts renewed (the others are lost: run again, cancelled or ended)."""
    if not attempts:
        return set()
    sql = _RENEW.format(ids=bulk.in_ids(conn, "id"))
    params = {
        "ids": bulk.ids(conn, {j for j, _ in attempts}),
        "owner": owner,
        "now": now,
        "until": now + lease,
    }
    renewed = {(int(r.id), int(r.attempt)) for r in conn.execute(bulk.text(conn, sql), params)}
    return renewed & set(attempts)
