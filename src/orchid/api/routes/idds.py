"""The iDDS REST surface (what the idds-client 2.6 ``ClientManager`` calls), served by Orchid.

Mounted at ``/idds``: point a client's host setting there (``IDDS_HOST=https://orchid:8443/idds``
or ``[rest] host`` in its ``idds.cfg``). Paths, parameters and JSON shapes are those of the
iDDS server (``main/lib/idds/rest/v1``), positional ``null``s included; errors carry the
``ExceptionClass``/``ExceptionMessage`` headers the client turns into its own exceptions,
so ``ClientManager`` shows Orchid's message. Authentication and authorization are
Orchid's: the client's OIDC token (``X-IDDS-Auth-Token``) is read as a bearer token (a
local Orchid token works as well), an X.509 DN comes through the trusted proxy, and a
caller reaches exactly the workflows it may reach through ``/api/v1``. Job tokens are
refused here. A request is a workflow, a transform a work: docs/from-idds.md.

What a request describes is read as data by :mod:`orchid.core.idds`; nothing a client
names is ever imported.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from orchid.api.routes.idds_shapes import registered, request_row, transform_row
from orchid.api.routes.messages import json_body, read_body
from orchid.api.threads import in_thread
from orchid.auth import Unauthenticated
from orchid.core import idds as idds_core
from orchid.core.model import Principal, Workflow
from orchid.engine import extend
from orchid.engine.submit import submit
from orchid.errors import InvalidInput, NotFound, OrchidError
from orchid.store import commands, workflows, works
from orchid.web.access import MAX_ID, refuse_job_token, visible_workflow
from orchid.web.errors import status_of
from orchid.web.peers import peer
from orchid.web.state import ApiState

__all__ = [
    "PREFIX",
    "IddsRoute",
    "answer",
    "caller_of",
    "parse_id",
    "requests_of",
    "router",
]

logger = logging.getLogger(__name__)
PREFIX = "/idds"
MAX_REQUEST_BYTES = 256 * 1024 * 1024  # the server's own max_request_bytes applies first
# iDDS exception classes (idds.common.exceptions) by HTTP status: the client raises them
EXCEPTION_CLASS = {
    400: "BadRequest",
    401: "AuthenticationException",
    403: "AuthenticationNoPermission",
    404: "NoObject",
    409: "ConflictRequestException",
    413: "BadRequest",
    422: "BadRequest",
}


def answer(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(data, sort_keys=True), status, headers, media_type="application/json"
    )


def _error(exc: Exception) -> Response:
    status = status_of(exc) if isinstance(exc, OrchidError) else 400
    if isinstance(exc, idds_core.IddsError | RequestValidationError) or status in (413, 422):
        status = 400
    message = str(exc)
    if isinstance(exc, RequestValidationError):
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    # one header line, in latin-1: what HTTP headers may carry
    header = " | ".join(message.splitlines()).encode("latin-1", "replace").decode("latin-1")
    headers = {"ExceptionClass": EXCEPTION_CLASS.get(status, "CoreException")}
    headers["ExceptionMessage"] = header[:4000]
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return answer(status, {"error": message}, headers)


class IddsRoute(APIRoute):
    """Errors as the iDDS client reads them (headers), not as ``/api/v1`` writes them."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def respond(request: Request) -> Response:
            try:
                response = await handler(request)
            except (OrchidError, RequestValidationError) as exc:
                response = _error(exc)
            if request.query_params.get("json_outputs", "").upper() == "TRUE":
                return _enveloped(response)
            return response

        return respond


def _enveloped(response: Response) -> Response:
    """The answer as iDDS gives it to clients with json_outputs: always 200, the status,
    data and error in the body."""
    if response.media_type != "application/json":
        return response
    data = json.loads(bytes(response.body)) if response.body else None
    error = None
    if "ExceptionClass" in response.headers:
        error = {
            "ExceptionClass": response.headers["ExceptionClass"],
            "ExceptionMessage": response.headers["ExceptionMessage"],
        }
        data = None
    status = 0 if response.status_code == 200 else response.status_code
    return answer(200, {"status": status, "data": data, "error": error})


router = APIRouter(prefix=PREFIX, tags=["idds"], route_class=IddsRoute)


# --- who, and which workflow -----------------------------------------------------------------


def caller_of(request: Request) -> Principal:
    """The caller, from Orchid's headers or the iDDS client's (its OIDC token in
    X-IDDS-Auth-Token); job tokens are refused on this surface."""
    st: ApiState = request.app.state.orchid
    headers = dict(request.headers)
    token = headers.get("x-idds-auth-token")
    if token and "authorization" not in headers:
        headers["authorization"] = f"Bearer {token}"
    who = st.authenticator.authenticate(headers, peer(request))
    if who is None:
        raise Unauthenticated(
            "authentication required",
            "give the iDDS client an Orchid token or an OIDC token of this server's issuer "
            "(IDDS_AUTH_TYPE=oidc, IDDS_OIDC_TOKEN, IDDS_VO: docs/from-idds.md)",
        )
    refuse_job_token(who, f"{request.method} {request.url.path}")
    return who


def parse_id(value: str, what: str) -> int | None:
    if value in ("null", "None", ""):
        return None
    if not value.isdigit() or not 1 <= int(value) <= MAX_ID:
        raise InvalidInput(f"{what} must be a whole number (or null); got {value!r}")
    return int(value)


def _flag(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes")


def requests_of(
    st: ApiState, who: Principal, request_id: str, workload_id: str, *, act: bool = False
) -> list[Workflow]:
    """The workflows a request id or a workload id names that the caller may see."""
    rid, wid = parse_id(request_id, "request_id"), None
    if rid is not None:
        return [visible_workflow(st, who, rid, act=act, missing=f"no request {rid}")]
    if workload_id in ("null", "None", ""):
        raise InvalidInput("give a request_id or a workload_id")
    wid = workload_id
    with st.db.engine.connect() as conn:
        rows = workflows.list_recent(
            conn, visible_to=None if who.admin else (who.user, who.groups), limit=500
        )
    # the workload id a client gave its request, else (none given) the request id itself
    found = [w for w in rows if str((w.params.get("idds") or {}).get("workload_id")) == wid]
    found = found or [
        w for w in rows if str(w.id) == wid and not (w.params.get("idds") or {}).get("workload_id")
    ]
    if not found:
        raise NotFound(f"no request with workload_id {wid}")
    for wf in found:
        visible_workflow(st, who, wf.id, act=act)
    return found


# --- routes ---------------------------------------------------------------------------------


@router.get("/ping")
def ping() -> dict[str, str]:
    """Is the service up (no credentials needed, as Orchid's own ping)."""
    return {"Status": "OK"}


def _submit(st: ApiState, who: Principal, raw: bytes) -> int:
    body = json_body(raw)
    if not isinstance(body, dict):
        raise InvalidInput("an iDDS request is a JSON object (what ClientManager.submit sends)")
    template = idds_core.translate_request(body, rucio_manager=_rucio(st))
    logger.info("iDDS request from %s: workflow %s", who.user, template["name"])
    return submit(
        st.db,
        template,
        base_dir=None,
        params=None,
        owner=who.user,
        now=time.time(),
        executors=st.settings.executor_names,
        owner_groups=who.groups,
        data_managers=st.data_managers,
        limits=st.settings.limits,
        max_works=st.settings.max_works,
        read_files=False,
    )


def _rucio(st: ApiState) -> str:
    """The data manager of stage-in requests: the first of kind rucio (else one named so,
    which submission then reports as missing)."""
    for name, spec in (st.data_managers or {}).items():
        if spec.kind == "rucio":
            return name
    return "rucio"


@router.post("/request")
async def add_request(request: Request) -> Response:
    """Submit a request (``ClientManager.submit``, ``Client.add_request``): its workflow is
    translated into an Orchid template and submitted; answers ``{"request_id": id}``."""
    st: ApiState = request.app.state.orchid
    who = caller_of(request)
    raw = await read_body(request, min(st.max_body_bytes, MAX_REQUEST_BYTES))
    wf_id = await in_thread(_submit, st, who, raw)
    return answer(200, {"request_id": wf_id})


def _list(st: ApiState, who: Principal, request_id: str, workload_id: str, detail: bool) -> Any:
    found = requests_of(st, who, request_id, workload_id)
    out: list[dict[str, Any]] = []
    with st.db.engine.connect() as conn:
        for wf in found:
            req = request_row(wf)
            if not detail:
                out.append(req)
                continue
            out.extend(transform_row(wf, w, req) for w in works.list_for(conn, wf.id))
    return out


@router.get("/request/name/{name}")
def get_request_id_by_name(name: str, request: Request) -> Response:
    """``{name: request_id}`` of the caller's requests whose name holds ``name`` (as iDDS,
    which matches part of the name), among its 500 newest."""
    st: ApiState = request.app.state.orchid
    who = caller_of(request)
    with st.db.engine.connect() as conn:
        rows = workflows.list_recent(
            conn, visible_to=None if who.admin else (who.user, who.groups), limit=500
        )
    found = {}
    for wf in reversed(rows):  # the newest wins a name given twice
        full = (wf.params.get("idds") or {}).get("name") or wf.name
        if name in str(full):
            found[str(full)] = wf.id
    if not found:
        raise NotFound(f"no request named like {name!r}")
    return answer(200, found)


@router.get("/request/{request_id}/{workload_id}/{with_detail}")
@router.get("/request/{request_id}/{workload_id}/{with_detail}/{with_metadata}")
@router.get("/request/{request_id}/{workload_id}/{with_detail}/{with_metadata}/{with_transform}")
@router.get(
    "/request/{request_id}/{workload_id}/{with_detail}/{with_metadata}/{with_transform}"
    "/{with_processing}"
)
def get_requests(
    request_id: str,
    workload_id: str,
    with_detail: str,
    request: Request,
    with_metadata: str = "False",
    with_transform: str = "False",
    with_processing: str = "False",
) -> Response:
    """Requests (``get_requests``, ``get_status``): one row each, or with_detail one row per
    transform (work) with its file (job) counts."""
    st: ApiState = request.app.state.orchid
    who = caller_of(request)
    detail = _flag(with_detail) or _flag(with_transform)
    return answer(200, _list(st, who, request_id, workload_id, detail))


def _command(
    st: ApiState, who: Principal, request_id: str, workload_id: str, action: str
) -> list[Any]:
    for wf in requests_of(st, who, request_id, workload_id, act=True):
        if action == "finish" and extend.close(st.db, wf.id, None, time.time()):
            continue  # an open request: no more works; it ends once those it has have
        with st.db.begin() as conn:
            commands.add(conn, wf.id, action, time.time())  # type: ignore[arg-type]
    return registered()


@router.put("/request/abort/{request_id}/{workload_id}")
def abort(request_id: str, workload_id: str, request: Request) -> Response:
    """Abort a request: its jobs are cancelled, it ends cancelled."""
    st: ApiState = request.app.state.orchid
    return answer(200, _command(st, caller_of(request), request_id, workload_id, "abort"))


@router.put("/request/abort/{request_id}/{workload_id}/{task_id}")
def abort_task(request_id: str, workload_id: str, task_id: str, request: Request) -> Response:
    """Abort one task of a request: not something Orchid does (yet)."""
    st: ApiState = request.app.state.orchid
    requests_of(st, caller_of(request), request_id, workload_id, act=True)
    raise idds_core.IddsError(
        "aborting one task of a request is not supported by Orchid: abort the whole "
        "request (ClientManager.abort), or retry it later"
    )


@router.put("/request/retry/{request_id}/{workload_id}")
def retry(request_id: str, workload_id: str, request: Request) -> Response:
    """Retry a request: its failed jobs run again (it reopens if it had ended)."""
    st: ApiState = request.app.state.orchid
    return answer(200, _command(st, caller_of(request), request_id, workload_id, "retry"))


@router.put("/request/close/{request_id}/{workload_id}")
def close(request_id: str, workload_id: str, request: Request) -> Response:
    """Close a request: nothing new starts; it ends once what runs has (Orchid's finish).
    An open request is closed instead: no more works are added, and it ends once the works
    it has have ended."""
    st: ApiState = request.app.state.orchid
    return answer(200, _command(st, caller_of(request), request_id, workload_id, "finish"))


def _add_transform(st: ApiState, who: Principal, request_id: str, raw: bytes) -> int:
    rid = parse_id(request_id, "request_id")
    if rid is None:
        raise InvalidInput("give the request_id of the request the work is added to")
    wf = visible_workflow(st, who, rid, act=True, missing=f"no request {rid}")
    body = json_body(raw)
    if not isinstance(body, dict):
        raise InvalidInput("an iDDS transform is a JSON object (what submit_work sends)")
    with st.db.engine.connect() as conn:
        template, _ = workflows.template_of(conn, wf.id)
    spec = idds_core.translate_transform(body, template, rucio_manager=_rucio(st))
    try:
        added = extend.add_work(
            st.db,
            wf.id,
            spec,
            time.time(),
            st.settings.executor_names,
            data_managers=st.data_managers,
            by=(who.user, who.groups),
            max_works=st.settings.max_works,
            only_open=True,
        )
    except extend.WorkflowEnded:
        raise extend.WorkflowEnded(
            f"request {rid} takes no more works: it has ended (docs/from-idds.md)"
        ) from None
    except extend.NotOpen:
        raise extend.NotOpen(
            f"request {rid} takes no more works: it was not submitted open (set "
            "`workflow.open = True` before ClientManager.submit), or it was closed "
            "(docs/from-idds.md)"
        ) from None
    if added.changed:
        raise idds_core.IddsError(
            f"request {rid} has a work {added.name} already, with another definition: "
            "give the added work a task name of its own"
        )
    logger.info("iDDS work %s added to request %s by %s", added.name, rid, who.user)
    return added.work_id


@router.post("/transform/{request_id}")
async def add_transform(request_id: str, request: Request) -> Response:
    """Add a work to an open request (``ClientManager.submit_work``, ``add_transform``): it
    is translated as ``submit`` translates works and added to the running workflow;
    answers ``{"transform_id": id}`` (the work id). Adding the same work again gives the
    same id."""
    st: ApiState = request.app.state.orchid
    who = caller_of(request)
    raw = await read_body(request, min(st.max_body_bytes, MAX_REQUEST_BYTES))
    work_id = await in_thread(_add_transform, st, who, request_id, raw)
    return answer(200, {"transform_id": work_id})


@router.get("/transform/{request_id}")
def get_transforms(request_id: str, request: Request) -> Response:
    """The transforms (works) of a request."""
    st: ApiState = request.app.state.orchid
    return answer(200, _list(st, caller_of(request), request_id, "null", True))


@router.get("/transform/{request_id}/{transform_id}")
def get_transform(request_id: str, transform_id: str, request: Request) -> Response:
    """One transform (work) of a request."""
    st: ApiState = request.app.state.orchid
    tid = parse_id(transform_id, "transform_id")
    rows = _list(st, caller_of(request), request_id, "null", True)
    found = [r for r in rows if r["transform_id"] == tid]
    if not found:
        raise NotFound(f"no transform {transform_id} in request {request_id}")
    return answer(200, found[0])


# --- what Orchid does not serve (yet): one clear answer -------------------------------------

NOT_SERVED = {
    "request/build": "build requests (submit_build)",
    "catalog": "this catalog call (get_match_contents, register_contents, get_contents_output_ext)",
    "cacher": "the file cacher (upload_to_cacher, download_from_cacher; Orchid's cache is "
    "PUT /api/v1/cache/{sha256})",
    "workflow_task": "workflow tasks (create_workflow_task, adjust_worker, close_workflow_task)",
    "metainfo": "meta info (get_metainfo)",
    "auth": "iDDS's own OIDC login (setup_oidc_token): get a token from your identity "
    "provider, or `orchid token create`",
    "request": "updating a request",
    "hpo": "this HPO call",
}


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
def not_served(rest: str, request: Request) -> Response:
    """Every other iDDS path: a 400 that names what is not supported, for signed-in callers."""
    caller_of(request)
    parts = rest.split("/")
    what = NOT_SERVED.get("/".join(parts[:2])) or NOT_SERVED.get(parts[0])
    if what is None:
        raise NotFound(f"no iDDS route {request.method} {PREFIX}/{rest}")
    raise idds_core.IddsError(
        f"{what} is not supported by Orchid's iDDS interface (docs/from-idds.md)"
    )
