"""Event buses wake agents; correctness never depends on them (agents also poll)."""

from __future__ import annotations

from orchid.bus.base import EventBus
from orchid.bus.memory import MemoryBus
from orchid.errors import ConfigError
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


__all__ = ["KINDS", "EventBus", "MemoryBus", "make_bus"]
