"""The SQL of the cross-process event buses: NOTIFY/LISTEN on PostgreSQL, a table elsewhere.

Signals only wake agents; they carry a topic and the bus that sent them, never data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.store.tables import bus_events

CHANNEL = "orchid"  # NOTIFY channels are per database already


# --- PostgreSQL LISTEN/NOTIFY, on a psycopg connection in autocommit mode --------------------


def pg_listen(conn: Any, channel: str = CHANNEL) -> None:
    conn.execute(f'LISTEN "{channel}"')


def pg_notify(conn: Any, payloads: Sequence[str], channel: str = CHANNEL) -> None:
    """Send each payload (PostgreSQL folds identical ones sent together into one)."""
    conn.execute(
        "SELECT pg_notify(%s, p) FROM unnest(CAST(%s AS TEXT[])) AS p", (channel, list(payloads))
    )


def pg_notify_on_commit(conn: Connection, payloads: Sequence[str], channel: str = CHANNEL) -> None:
    """:func:`pg_notify` inside a transaction of ours: sent when it commits, not before."""
    conn.execute(
        sa.text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS TEXT[])) AS p"),
        {"channel": channel, "payloads": list(payloads)},
    )


# --- the events table of the `db` bus ------------------------------------------------------------


def publish(conn: Connection, topics: Sequence[str], origin: str, now: float) -> None:
    conn.execute(
        sa.insert(bus_events), [{"topic": t, "origin": origin, "created_at": now} for t in topics]
    )


def last_id(conn: Connection) -> int:
    return int(
        conn.execute(sa.select(sa.func.coalesce(sa.func.max(bus_events.c.id), 0))).scalar_one()
    )


def since(conn: Connection, after: int, limit: int = 1000) -> list[tuple[int, str, str]]:
    """Signals newer than ``after``: (id, topic, origin), oldest first."""
    rows = conn.execute(
        sa.select(bus_events.c.id, bus_events.c.topic, bus_events.c.origin)
        .where(bus_events.c.id > after)
        .order_by(bus_events.c.id)
        .limit(limit)
    )
    return [(int(i), str(t), str(o)) for i, t, o in rows]


def prune(conn: Connection, before: float) -> int:
    """Forget signals older than ``before`` (every reader has long seen them)."""
    res = conn.execute(sa.delete(bus_events).where(bus_events.c.created_at < before))
    return int(res.rowcount)
