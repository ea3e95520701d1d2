"""Leases: how agents take rows without stepping on each other.

See docs/architecture.md, "Leases".

PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` inside the UPDATE, so many
agents claim disjoint batches at once. SQLite: one writer at a time (every
transaction is BEGIN IMMEDIATE), so the plain sub-select is already exclusive.
An expired lease is free again: a killed agent loses nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row


def pick(conn: Connection, select: sa.Select[Any]) -> sa.Select[Any]:
    """Lock the picked rows on PostgreSQL and skip those another agent holds.

    ``FOR NO KEY UPDATE``: a transaction that only holds the key-share lock a
    foreign key takes (a transformer writing a work's jobs) does not hide the row.
    """
    if conn.dialect.name == "postgresql":
        return select.with_for_update(skip_locked=True, key_share=True)
    return select


def claim(
    conn: Connection,
    table: sa.Table,
    where: Sequence[sa.ColumnElement[bool]],
    *,
    owner: str,
    now: float,
    lease: float,
    limit: int,
    owner_col: str = "lease_owner",
    values: dict[str, Any] | None = None,
    returning: Sequence[sa.ColumnElement[Any]] = (),
) -> list[Row[Any]]:
    """Lease up to ``limit`` rows matching ``where`` whose lease is free; return them."""
    free = sa.or_(table.c.lease_until.is_(None), table.c.lease_until < now)
    ids = pick(conn, sa.select(table.c.id).where(*where, free).order_by(table.c.id).limit(limit))
    stmt = (
        sa.update(table)
        .where(table.c.id.in_(ids.scalar_subquery()))
        .values({owner_col: owner, "lease_until": now + lease, **(values or {})})
        .returning(table.c.id, *returning)
    )
    return list(conn.execute(stmt))


def release(conn: Connection, table: sa.Table, ids: Sequence[int], owner: str) -> None:
    """Give back leases this owner holds."""
    if ids:
        conn.execute(
            sa.update(table)
            .where(table.c.id.in_(ids), table.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )
