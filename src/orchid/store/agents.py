"""Agent heartbeats: who is running, where, and when it was last seen (for health checks)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from orchid.store.tables import agents


@dataclass(frozen=True)
class AgentInfo:
    name: str
    roles: str
    host: str
    pid: int
    started_at: float
    last_seen: float


def heartbeat(conn: Connection, *, name: str, roles: str, host: str, pid: int, now: float) -> None:
    """Record that this agent process is alive (insert on first beat, update after)."""
    values = {
        "name": name,
        "roles": roles,
        "host": host,
        "pid": pid,
        "started_at": now,
        "last_seen": now,
    }
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(agents)
    conn.execute(
        insert.values(values).on_conflict_do_update(
            index_elements=[agents.c.name], set_={"last_seen": now, "roles": roles}
        )
    )


def alive(conn: Connection, *, since: float) -> list[AgentInfo]:
    """Agents seen at or after ``since``, most recent first."""
    rows = conn.execute(
        sa.select(agents).where(agents.c.last_seen >= since).order_by(agents.c.last_seen.desc())
    )
    return [AgentInfo(**r._mapping) for r in rows]


def forget(conn: Connection, name: str) -> None:
    """An agent that stops cleanly says goodbye."""
    conn.execute(sa.delete(agents).where(agents.c.name == name))
