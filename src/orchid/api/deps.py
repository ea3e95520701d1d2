"""What every route needs: the database, the caller, and access checks.

Job tokens (``orc_job.…``, what a job of a work with ``api_token: true`` gets) are closed
out in one place: :data:`Caller` refuses them, so a route is closed to them unless it takes
:data:`JobCaller` instead; and every route that takes :data:`JobCaller` reaches a workflow
only through :func:`visible_workflow` (or :func:`visible_job`), which confines a job's token
to its own workflow. Worker tokens (``--worker QUEUE``) are closed out the same way: both
:data:`Caller` and :data:`JobCaller` refuse them, and only :data:`WorkerCaller` (the worker
routes) takes them. A workflow a caller may not see is a 404, exactly like one that does
not exist, so that probing ids tells nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from orchid.api.errors import Denied
from orchid.api.peers import peer
from orchid.auth import Authenticator, Unauthenticated, can_act, can_see
from orchid.core.model import Job, Principal, Workflow
from orchid.datamgr.registry import ManagerSpec
from orchid.engine.workers import WorkerDesk
from orchid.errors import InvalidInput, NotFound, OrchidError
from orchid.settings import Settings
from orchid.store import jobs, workflows
from orchid.store.db import Database

STREAM_RECHECK_S = 5.0  # an open event stream re-checks its caller's credentials this often


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
    workers: WorkerDesk | None = None  # the worker routes' (None: not served)


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


def authenticate(request: Request, st: ApiState) -> Principal:
    """Whoever the request's credentials name (a job's token too); none is a 401."""
    who = st.authenticator.authenticate(dict(request.headers), peer(request))
    if who is None:
        raise Unauthenticated(
            "authentication required",
            "send `Authorization: Bearer <token>` (`orchid token create` makes one)",
        )
    return who


def refuse_job_token(who: Principal, what: str) -> None:
    """403 for a job's token, or a worker's: ``what`` (a route, a page) is not among what
    it may do."""
    refuse_worker_token(who, what)
    if who.workflow_id is not None:
        raise Denied(
            f"a job's token may not use {what}: it acts on its own workflow "
            f"({who.workflow_id}) only: its works, jobs, logs, messages and studies, and "
            "the cache objects its jobs name"
        )


def refuse_worker_token(who: Principal, what: str) -> None:
    """403 for a worker's token: it leases, renews and reports its queue's jobs, nothing else."""
    if who.worker_queue is not None:
        raise Denied(
            f"a worker's token may not use {what}: it leases, renews and reports the jobs of "
            f"queue {who.worker_queue!r} (/api/v1/workers/...) and does nothing else"
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
    who = authenticate(request, st)
    if who.worker_queue is None:
        raise Denied(
            f"{request.method} {request.url.path} is for Orchid workers: send a worker's "
            "token (`orchid token create --user NAME --worker QUEUE`)"
        )
    return who


Caller = Annotated[Principal, Depends(caller)]
# for the routes a job needs: those of its own workflow, which visible_workflow enforces,
# and the cache by digest (a digest is only known from the bytes or from the workflow)
JobCaller = Annotated[Principal, Depends(job_caller)]
# for the worker routes only (/workers/...): a worker's token, scoped to its queue, which
# every other route refuses (Caller and JobCaller)
WorkerCaller = Annotated[Principal, Depends(worker_caller)]


def visible_workflow(
    st: ApiState, who: Principal, workflow_id: int, *, act: bool = False, missing: str = ""
) -> Workflow:
    """The workflow if this caller may see it (and act on it, with ``act``).

    One it may not see, and any but its own for a job's token, is a 404 with the message
    of one that does not exist (``missing``: that of the resource asked for, when it is not
    the workflow itself), so that ids tell nothing about what others have.
    """
    hidden = NotFound(missing or f"no workflow {workflow_id}")
    if who.workflow_id is not None and who.workflow_id != workflow_id:
        raise hidden
    try:
        with st.db.engine.connect() as conn:
            wf = workflows.get(conn, workflow_id)
    except NotFound:
        raise hidden from None
    if not can_see(who, wf.owner, wf.share_group):
        raise hidden
    if act and not can_act(who, wf.owner, wf.share_group):
        raise Denied(f"you may not change workflow {workflow_id}: it is not yours or your group's")
    return wf


def visible_job(st: ApiState, who: Principal, job_id: int) -> Job:
    """The job if this caller may see its workflow; else 404 as for a job that does not exist."""
    with st.db.engine.connect() as conn:
        job = jobs.get(conn, check_id(job_id))
    visible_workflow(st, who, job.workflow_id, missing=f"no job {job_id}")
    return job


class Recheck:
    """Re-runs ``check`` (which raises an OrchidError once the caller may no longer read
    what it streams: a revoked or expired token, an attempt that ended) at most every
    ``every`` seconds (default STREAM_RECHECK_S), so that an open stream ends with its
    credentials instead of with its workflow."""

    def __init__(self, check: Callable[[], object], every: float | None = None) -> None:
        self._check = check
        self._every = STREAM_RECHECK_S if every is None else every
        self._due = time.monotonic() + self._every

    async def refused(self) -> str | None:
        """Why the caller may no longer read the stream (None: it may, or not checked yet)."""
        now = time.monotonic()
        if now < self._due:
            return None
        self._due = now + self._every
        try:
            await run_in_threadpool(self._check)
        except OrchidError as exc:
            return str(exc)
        return None


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
