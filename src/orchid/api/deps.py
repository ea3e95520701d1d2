"""What every route needs: the database, the caller, and access checks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from orchid.api.auth import Authenticator, Unauthenticated, can_act, can_see
from orchid.api.errors import Denied
from orchid.core.model import Principal, Workflow
from orchid.errors import InvalidInput
from orchid.settings import Settings
from orchid.store import workflows
from orchid.store.db import Database


@dataclass(frozen=True)
class ApiState:
    """What the application holds: built once at start, read by every request."""

    settings: Settings
    db: Database
    authenticator: Authenticator
    max_body_bytes: int = 256 * 1024 * 1024
    trust_client_paths: bool = False  # `orchid up`: same machine, same user


def state(request: Request) -> ApiState:
    s: ApiState = request.app.state.orchid
    return s


State = Annotated[ApiState, Depends(state)]


def caller(request: Request, st: State) -> Principal:
    """The authenticated caller; no credentials is a 401 (every endpoint but ping needs one)."""
    who = st.authenticator.authenticate(
        dict(request.headers), request.client.host if request.client else None
    )
    if who is None:
        raise Unauthenticated(
            "authentication required",
            "send `Authorization: Bearer <token>` (`orchid token create` makes one)",
        )
    return who


Caller = Annotated[Principal, Depends(caller)]


def visible_workflow(
    st: ApiState, who: Principal, workflow_id: int, *, act: bool = False
) -> Workflow:
    """The workflow if this caller may see it (or act on it); 404 if none, 403 if not theirs."""
    with st.db.engine.connect() as conn:
        wf = workflows.get(conn, workflow_id)
    if who.workflow_id is not None and who.workflow_id != workflow_id:
        raise Denied(f"a job's token acts on its own workflow only, not on {workflow_id}")
    allowed = can_act if act else can_see
    if not allowed(who, wf.owner, wf.share_group):
        verb = "change" if act else "see"
        raise Denied(f"you may not {verb} workflow {workflow_id}: it is not yours or your group's")
    return wf


def now() -> float:
    return time.time()


def check_id(value: int) -> int:
    if not 1 <= value <= 2**62:
        raise InvalidInput(f"ids are whole numbers from 1 to 2^62; got {value}")
    return value
