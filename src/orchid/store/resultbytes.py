"""The ``result_bytes`` quota (issue 21): the bytes of job results (JSON text as stored)
that a user's or a group's live workflows hold.

Set-based like the rest of the recording: :func:`orchid.store.dispatch.record` reads each
job's stored result size with the rows it reads anyway, and adds what a batch changed to
``result_usage`` with one statement (a row per workflow and shard; a few shards so that
carriers recording results of one workflow at once seldom wait for one row). What a user
holds is the sum of those rows over its live workflows: archived ones drop out and come
back when restored (their ``result_usage`` rows stay; a restore counts them again, as
its rows' JSON is written anew).

When result_bytes limits are set, a batch whose results would take a subject over one is
checked under an advisory lock (PostgreSQL; SQLite's writes are serialised already): the
jobs whose results do not fit fail, not retried, their results dropped, with a reason
that names the limit (:func:`refusal`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.store import bulk
from orchid.store.tables import quotas, result_usage, workflows

QUOTA = "result_bytes"
SHARDS = 8
_LOCK_KEY = 0x0C41D_0022  # pg_advisory_xact_lock: one check of result_bytes at a time
Account = tuple[str, str]  # (owner, group or '')
HINT = (
    "ask an admin to archive old workflows of yours (`orchid archive ID`) or to raise it "
    "(`orchid quota set`); write large outputs to files and return their names"
)


def size_sql(conn: Connection, column: str = "result") -> str:
    """SQL: the bytes of a stored JSON result, 0 for none (SQL NULL, or a JSON null: rows
    written through SQLAlchemy, as a restore does, store no result as ``null``)."""
    if bulk.is_pg(conn):
        return f"coalesce(octet_length(nullif(CAST({column} AS TEXT), 'null')), 0)"
    return f"coalesce(length(CAST(nullif({column}, 'null') AS BLOB)), 0)"


def live() -> sa.ColumnElement[bool]:
    """Workflows whose rows are in the database (an archive being written still is)."""
    state = workflows.c.archive_state
    return sa.or_(state.is_(None), state == "writing")


def held(
    conn: Connection, owners: Iterable[str] | None = None, groups: Iterable[str] | None = None
) -> dict[Account, int]:
    """(owner, group or '') → result bytes of its live workflows; all accounts when neither
    ``owners`` nor ``groups`` is given, else those of these owners or groups."""
    group = sa.func.coalesce(workflows.c.share_group, "")
    q = (
        sa.select(workflows.c.owner, group, sa.func.sum(result_usage.c.bytes))
        .select_from(result_usage.join(workflows, workflows.c.id == result_usage.c.workflow_id))
        .where(live())
        .group_by(workflows.c.owner, group)
    )
    if owners is not None or groups is not None:
        q = q.where(
            sa.or_(
                workflows.c.owner.in_(sorted(set(owners or ()))),
                workflows.c.share_group.in_(sorted(set(groups or ()))),
            )
        )
    return {(str(o), str(g)): int(n or 0) for o, g, n in conn.execute(q)}


def of(accounts: Mapping[Account, int], kind: str, subject: str) -> int:
    i = 0 if kind == "user" else 1
    return sum(n for a, n in accounts.items() if a[i] == subject)


def add(conn: Connection, deltas: Mapping[int, int], shard: int) -> None:
    """Add each workflow's change (bytes; negative when results got smaller) in one
    statement, in workflow order (two batches never lock the same rows in opposite
    orders)."""
    rows = [[wf, d] for wf, d in sorted(deltas.items()) if d]
    if not rows:
        return
    elements = bulk.json_rows(bulk.is_pg(conn))
    conn.execute(
        sa.text(
            "INSERT INTO result_usage (workflow_id, shard, bytes) SELECT "
            "CAST(u.value ->> 0 AS BIGINT), :shard, CAST(u.value ->> 1 AS BIGINT) "
            f"FROM {elements} WHERE true ORDER BY 1 "
            "ON CONFLICT (workflow_id, shard) DO UPDATE SET "
            "bytes = result_usage.bytes + excluded.bytes"
        ),
        {"rows": bulk.json_text(rows), "shard": shard % SHARDS},
    )


def recount(conn: Connection, workflow_id: int) -> None:
    """Count a workflow's result bytes again from its jobs, in one statement (a restore:
    its rows came back from the archive file, their JSON written anew)."""
    conn.execute(sa.delete(result_usage).where(result_usage.c.workflow_id == workflow_id))
    conn.execute(
        sa.text(
            "INSERT INTO result_usage (workflow_id, shard, bytes) "
            f"SELECT workflow_id, 0, sum({size_sql(conn)}) FROM jobs "
            "WHERE workflow_id = :wf AND result IS NOT NULL GROUP BY workflow_id"
        ),
        {"wf": workflow_id},
    )


class Gate:
    """Decides, job by job, which results of one batch fit under the result_bytes limits
    of their owners and groups (made by :func:`gate`)."""

    def __init__(
        self,
        limits: Mapping[tuple[str, str], int],
        used: Mapping[Account, int],
        accounts: Mapping[int, Account],
    ) -> None:
        self._limits = limits  # (kind, subject) → bytes
        self._used: dict[tuple[str, str], int] = {
            k: of(used, *k) for k in limits
        }  # (kind, subject) → bytes held now
        self._accounts = accounts  # workflow id → (owner, group)

    def admit(self, workflow_id: int, delta: int) -> str | None:
        """None when ``delta`` more bytes fit (and count them), else the failure reason."""
        owner, group = self._accounts.get(workflow_id, ("", ""))
        keys = [k for k in (("user", owner), ("group", group)) if k in self._limits]
        for k in keys:
            if self._used[k] + delta > self._limits[k]:
                return refusal(k, self._limits[k], self._used[k], delta)
        for k in keys:
            self._used[k] += delta
        return None

    def release(self, workflow_id: int, freed: int) -> None:
        """A refused job's old result is dropped: its bytes are free again."""
        owner, group = self._accounts.get(workflow_id, ("", ""))
        for k in (("user", owner), ("group", group)):
            if k in self._used:
                self._used[k] -= freed


def refusal(key: tuple[str, str], value: int, used: int, size: int) -> str:
    """The failure reason of a job whose result does not fit under a result_bytes limit."""
    kind, subject = key
    return (
        f"limit {QUOTA} of {kind} {subject} is {value}, {used} used: this result of "
        f"{size} more bytes would pass it, so it was not stored; {HINT}"
    )


def gate(conn: Connection, workflow_ids: Iterable[int]) -> Gate | None:
    """The gate of a batch whose results grow these workflows' holdings; None when no
    result_bytes limit bears on them (nothing to check, nothing locked)."""
    rows = conn.execute(
        sa.select(quotas.c.kind, quotas.c.subject, quotas.c.value).where(quotas.c.quota == QUOTA)
    ).all()
    if not rows:
        return None
    wfs = sorted(set(workflow_ids))
    accounts: dict[int, Account] = {}
    q = sa.select(workflows.c.id, workflows.c.owner, workflows.c.share_group).where(
        workflows.c.id.in_(wfs)
    )
    for r in conn.execute(q):
        accounts[int(r.id)] = (str(r.owner), str(r.share_group or ""))
    subjects = {("user", o) for o, _ in accounts.values()} | {
        ("group", g) for _, g in accounts.values() if g
    }
    limits = {(r.kind, r.subject): int(r.value) for r in rows if (r.kind, r.subject) in subjects}
    if not limits:
        return None
    if bulk.is_pg(conn):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    owners = [s for k, s in limits if k == "user"]
    groups = [s for k, s in limits if k == "group"]
    return Gate(limits, held(conn, owners, groups), accounts)


def refused(conn: Connection, growing: Iterable[tuple[int, int, int, int]]) -> dict[int, str]:
    """Job id → why its result is refused, of (job id, workflow id, bytes of its stored
    result, bytes its new one adds) of results that grow: those that would take their
    owner or group over a result_bytes limit, in the order given."""
    growing = list(growing)
    checked = gate(conn, (wf for _, wf, _, _ in growing))
    if checked is None:
        return {}
    out: dict[int, str] = {}
    for job_id, wf, old, delta in growing:
        why = checked.admit(wf, delta)
        if why is not None:
            out[job_id] = why
            checked.release(wf, old)  # the refused job keeps no result
    return out


def deltas(changes: Iterable[tuple[int, int]]) -> dict[int, int]:
    """(workflow id, bytes) pairs → workflow id → their sum."""
    out: dict[int, int] = defaultdict(int)
    for wf, d in changes:
        out[wf] += d
    return out
