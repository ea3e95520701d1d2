"""Liveness (no authentication) and health (database, agents)."""

from __future__ import annotations

from fastapi import APIRouter

from orchid import __version__
from orchid.api.deps import Caller, JobCaller, State, now
from orchid.core.model import ALIVE_S
from orchid.store import agents
from orchid.wire import Health, WhoAmI

router = APIRouter(tags=["system"])


@router.get("/ping")
def ping() -> dict[str, str]:
    """Liveness for load balancers: answers without touching the database."""
    return {"ping": "pong", "version": __version__}


@router.get("/health", response_model=Health)
def health(st: State, _: Caller) -> Health:
    """The database answers, and which agents were seen in the last 30 s."""
    with st.db.engine.connect() as conn:
        live = agents.alive(conn, since=now() - ALIVE_S)
    return Health(
        database="ok",
        version=__version__,
        agents=[
            {"name": a.name, "roles": a.roles, "host": a.host, "last_seen": a.last_seen}
            for a in live
        ],
    )


@router.get("/whoami", response_model=WhoAmI)
def whoami(who: JobCaller) -> WhoAmI:
    """Who the server takes the caller to be: user, groups, admin (clients filter by it)."""
    return WhoAmI(
        user=who.user,
        groups=sorted(who.groups),
        admin=who.admin,
        method=who.method,
        workflow_id=who.workflow_id,
    )
