"""Event buses wake agents; correctness never depends on them (agents also poll)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from sqlalchemy.engine import Connection

from orchid.bus.base import EventBus
from orchid.bus.memory import MemoryBus
from orchid.errors import ConfigError
from orchid.store import signals
from orchid.store.db import Database

KINDS = ("auto", "memory", "postgres", "db")


def make_bus(kind: str, db: Database) -> EventBus:
    """The bus named by the ``bus`` setting. ``auto``: LISTEN/NOTIFY on PostgreSQL, else
    in-process only (one process, or several that find each other's changes by polling)."""
    if kind == "auto":
        kind = "memory" if db.is_sqlite else "postgres"
    if kind == "memory":
        return MemoryBus()
    if kind == "postgres":
        if db.is_sqlite:
            raise ConfigError(
                "the postgres event bus needs a PostgreSQL database; use db or memory"
            )
        from orchid.bus.postgres import PostgresBus

        return PostgresBus(db.url, connect_args=db.connect_args)
    if kind == "db":
        from orchid.bus.db import DbBus

        return DbBus(db)
    raise ConfigError(f"unknown event bus {kind!r}; use one of {', '.join(KINDS)}")


def announce(conn: Connection, kind: str, topics: Sequence[str], now: float) -> None:
    """Send ``topics`` to the agents of every process the ``kind`` of bus reaches, from
    inside the transaction ``conn`` is in (they hear it once it commits), without a bus of
    one's own: for a process that only announces (the API's worker desk). A bus that
    reaches one process (``memory``) sends nothing: the agents find the rows at their poll."""
    if kind == "auto":
        kind = "memory" if conn.dialect.name == "sqlite" else "postgres"
    origin = f"announce-{os.getpid()}"  # never a listening bus's own, so never skipped
    if kind == "postgres":
        signals.pg_notify_on_commit(conn, [f"{origin} {t}" for t in topics])
    elif kind == "db":
        signals.publish(conn, list(topics), origin, now)


__all__ = ["KINDS", "EventBus", "MemoryBus", "announce", "make_bus"]
