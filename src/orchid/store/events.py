"""The outbox: every change writes an event in its own transaction. The bus only wakes agents."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.store.tables import events


def emit(conn: Connection, workflow_id: int, kind: str, data: dict[str, Any], now: float) -> None:
    conn.execute(
        sa.insert(events).values(workflow_id=workflow_id, kind=kind, data=data, created_at=now)
    )


def since(
    conn: Connection, workflow_id: int, after_id: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    """Events of a workflow newer than ``after_id``, oldest first (``orchid watch``)."""
    rows = conn.execute(
        sa.select(events)
        .where(events.c.workflow_id == workflow_id, events.c.id > after_id)
        .order_by(events.c.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]
