"""What every route needs: the database, the caller, and access checks."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orchid.api.auth import Authenticator, Unauthenticated, can_act, can_see
from orchid.api.errors import Denied
from orchid.core.model import Principal, Workflow
from orchid.datamgr.registry import ManagerSpec
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
    # the configured data managers (not built: templates are checked against them; None:
    # not checked here, the agents still check)
    data_managers: Mapping[str, ManagerSpec] | None = None


def state(request: Request) -> ApiState:
    s: ApiState = request.app.state.orchid
    return s


State = Annotated[ApiState, Depends(state)]


# declares the scheme in the OpenAPI document; the authenticator reads the headers itself
# (it also takes an X.509 DN from a trusted proxy)
_bearer = HTTPBearer(
    auto_error=False,
    description="a local token (`orchid token create`) or an OIDC access token",
)


def caller(
    request: Request,
    st: State,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> Principal:
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


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _query_names(dependant: Any) -> frozenset[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


def known_query(request: Request) -> None:
    """Refuse query parameters the route does not take: a misspelt filter (`?stauts=failed`)
    would otherwise be ignored and answer with everything."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    names = _QUERY_NAMES.get(id(route))
    if names is None:
        names = _QUERY_NAMES[id(route)] = _query_names(dependant)
    unknown = sorted(set(request.query_params) - names)
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise InvalidInput(
            f"unknown query parameter {unknown[0]!r}; this endpoint takes: {known}",
            field=f"query.{unknown[0]}",
        )


def now() -> float:
    return time.time()


MAX_ID = 2**62
# a page cursor is the id of the last row of the previous page (bounded: ids are 64-bit)
Cursor = Annotated[
    int | None, Query(ge=0, le=MAX_ID, description="`next_cursor` of the previous page")
]


def check_id(value: int) -> int:
    if not 1 <= value <= MAX_ID:
        raise InvalidInput(f"ids are whole numbers from 1 to 2^62; got {value}")
    return value
