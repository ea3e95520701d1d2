"""What every route needs, as FastAPI dependencies: the service's state, the caller, and the
query checks. The access rules themselves are :mod:`orchid.web.access`, shared with the monitor.

Job tokens are closed out in one place: :data:`Caller` refuses them, so a route is closed to
them unless it takes :data:`JobCaller` instead; and every route that takes :data:`JobCaller`
reaches a workflow only through :func:`~orchid.web.access.visible_workflow` (or
``visible_job``), which confines a job's token to its own workflow. Worker tokens
(``--worker QUEUE``) are closed out the same way: both :data:`Caller` and :data:`JobCaller`
refuse them, and only :data:`WorkerCaller` (the worker routes) takes them.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from orchid.core.model import Principal
from orchid.errors import InvalidInput
from orchid.web.access import MAX_ID, authenticate, refuse_job_token, refuse_worker_token
from orchid.web.errors import Denied
from orchid.web.state import ApiState


# Dependencies that only read the request are ``async def``: FastAPI runs a plain ``def``
# one in its thread pool, a thread hop per dependency and request (on every route).
# (HTTPConnection: the worker channel's WebSocket takes them too)
async def state(request: HTTPConnection) -> ApiState:
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
    """The authenticated caller; no credentials is a 401 (every endpoint but ping needs one)
    and a job's token a 403: routes are closed to job tokens unless they take JobCaller."""
    who = authenticate(request, st)
    refuse_job_token(who, f"{request.method} {request.url.path}")
    return who


def job_caller(
    request: Request,
    st: State,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> Principal:
    """The authenticated caller, a job's token included (see :data:`JobCaller`); a worker's
    token is a 403."""
    who = authenticate(request, st)
    refuse_worker_token(who, f"{request.method} {request.url.path}")
    return who


def worker_caller(
    request: Request,
    st: State,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> Principal:
    """A worker's token (see :data:`WorkerCaller`); any other caller is a 403."""
    return worker_of(request, st, f"{request.method} {request.url.path}")


def worker_of(conn: HTTPConnection, st: ApiState, what: str) -> Principal:
    """The worker a request or the worker channel comes from; any other caller is a 403."""
    who = authenticate(conn, st)
    if who.worker_queue is None:
        raise Denied(
            f"{what} is for Orchid workers: send a worker's token "
            "(`orchid token create --user NAME --worker QUEUE`)"
        )
    return who


Caller = Annotated[Principal, Depends(caller)]
# for the routes a job needs: those of its own workflow, which visible_workflow enforces,
# and the cache by digest (a digest is only known from the bytes or from the workflow)
JobCaller = Annotated[Principal, Depends(job_caller)]
# for the worker routes only (/workers/...): a worker's token, scoped to its queue, which
# every other route refuses (Caller and JobCaller)
WorkerCaller = Annotated[Principal, Depends(worker_caller)]


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _query_names(dependant: Any) -> frozenset[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


async def known_query(request: HTTPConnection) -> None:
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


# a page cursor is the id of the last row of the previous page (bounded: ids are 64-bit)
Cursor = Annotated[
    int | None, Query(ge=0, le=MAX_ID, description="`next_cursor` of the previous page")
]
