"""Workflows: submit, list, read, steer; their works and jobs; their event stream."""

from __future__ import annotations

import asyncio
import json
import tempfile
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from orchid.api.deps import Caller, Cursor, JobCaller, State, now
from orchid.api.threads import in_thread
from orchid.core import jsonvalues
from orchid.core.model import Principal
from orchid.core.states import TERMINAL_WORKFLOW, Action, JobStatus, WorkflowStatus
from orchid.core.template import check_values, decode, error_field
from orchid.engine.submit import submit
from orchid.errors import InvalidInput
from orchid.store import commands, events, jobs, workflows, works
from orchid.web.access import (
    Recheck,
    authenticate,
    check_id,
    refuse_archived,
    visible_workflow,
)
from orchid.web.errors import Denied, Malformed, TooLarge, too_large
from orchid.web.state import ApiState
from orchid.wire import (
    CommandOut,
    JobOut,
    JobPage,
    SubmitRequest,
    WorkflowDetail,
    WorkflowOut,
    WorkflowPage,
    WorkOut,
)

router = APIRouter(prefix="/workflows", tags=["workflows"])
WorkflowId = Annotated[int, Query(ge=1, le=2**62)]
NDJSON = "application/x-ndjson"

SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SubmitRequest.model_json_schema()},
            NDJSON: {
                "schema": {"type": "string"},
                "example": '{"template": {...}, "params": {}}\n{"work": "a", "name": "j1"}\n',
            },
        },
        "description": "JSON, or JSON lines: the submission first, then the template's "
        "jobs_file lines (large job graphs). `Content-Encoding: gzip` is accepted.",
    }
}


class _Gunzip:
    """Inflates a gzip body of one or more members (RFC 1952 allows several, e.g. pigz)
    into a file, at most ``limit`` bytes in all members together, a piece at a time;
    refuses a stream cut short, a bad header, or anything after a member that is not
    another one (HTTP 400)."""

    PIECE = 1024 * 1024  # bytes inflated per step: bounds the memory a body takes

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0  # bytes inflated so far, over every member
        self.member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.inside = False  # within a member: the body may not end here

    def feed(self, data: bytes, sink: IO[bytes]) -> None:
        """Inflate the next bytes of the body into ``sink``."""
        try:
            while data:
                self.inside = True
                # never 0, which zlib would read as "no limit"
                room = min(self.limit - self.size, self.PIECE) + 1
                piece = self.member.decompress(data, room)
                self.size += len(piece)
                if self.size > self.limit:
                    raise TooLarge(too_large(self.limit, unpacked=True))
                sink.write(piece)
                if self.member.eof:  # what follows can only be another member
                    data = self.member.unused_data
                    self.member = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    self.inside = False
                else:
                    data = self.member.unconsumed_tail
        except zlib.error as exc:
            raise Malformed(
                f"the body is not valid gzip ({exc}): send one gzip stream (or several "
                "one after the other) and nothing after it, or send it plain"
            ) from None

    def end(self) -> None:
        """The body is over: it must have ended where a member did."""
        if self.inside:
            raise Malformed(
                "the gzip body ends before its gzip stream does (cut off?); send it whole"
            )


BATCH_GZIP = 256 * 1024  # compressed bytes handed to a thread at once


async def _spool(request: Request, limit: int) -> IO[bytes]:
    """The request body, gunzipped if so encoded, in a temporary file; at most ``limit`` bytes.

    Unpacking runs in a thread (a small body may unpack to ``limit`` bytes: seconds of
    CPU), a batch of compressed bytes at a time.
    """
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding not in ("identity", "gzip"):
        raise InvalidInput(f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    out = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - returned
    try:
        if encoding == "gzip":
            inflate = _Gunzip(limit)
            packed = bytearray()
            async for chunk in request.stream():
                packed += chunk
                if len(packed) >= BATCH_GZIP:
                    await in_thread(inflate.feed, bytes(packed), out)
                    packed.clear()
            if packed:
                await in_thread(inflate.feed, bytes(packed), out)
            inflate.end()
        else:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise TooLarge(too_large(limit))
                out.write(chunk)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def _header(line: bytes) -> SubmitRequest:
    """The submission object. Decoded by ``json`` a Python call per object rather than by
    pydantic in one C call: a document of many MB would hold the GIL, and so stall the
    event loop, for seconds."""
    try:
        decoded = jsonvalues.loads(line.decode("utf-8"), share_gil=True)
    except UnicodeDecodeError:
        raise InvalidInput("the submission must be JSON in UTF-8") from None
    except ValueError as exc:  # not JSON, NaN/Infinity, nested too deeply
        raise InvalidInput(f"the submission is not standard JSON: {exc}") from None
    try:
        return SubmitRequest.model_validate(decoded)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = error_field(first["loc"]) or "body"
        raise InvalidInput(f"{where}: {first['msg']}", field=where) from None


def _lines(spool: IO[bytes]) -> Iterator[str]:
    for raw in spool:
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("job lines must be UTF-8 text") from None


def _submit(
    st: ApiState, who: Principal, request: SubmitRequest, lines: Iterator[str] | None
) -> int:
    template = request.template
    raw: Any = decode(template, "template") if isinstance(template, str) else template
    check_values(raw, "template")
    base_dir = None
    if request.base_dir and st.trust_client_paths:
        base_dir = Path(request.base_dir)
        if not base_dir.is_absolute() or not base_dir.is_dir():
            raise InvalidInput(f"base_dir {request.base_dir!r} is not an absolute folder here")
    group = request.share_group
    if group is not None and not who.admin and group not in who.groups:
        raise Denied(f"you are not in group {group!r}, so you cannot share with it")
    return submit(
        st.db,
        raw,
        base_dir=base_dir,
        params=request.params,
        owner=who.user,
        now=now(),
        share_group=group,
        job_lines=lines,
        read_files=False,
        executors=st.settings.executor_names,
        owner_groups=who.groups,
        data_managers=st.data_managers,
        limits=st.settings.limits,
        max_works=st.settings.max_works,
    )


def _submit_body(st: ApiState, who: Principal, spool: IO[bytes], ndjson: bool) -> int:
    """Parse the spooled body and submit it (in a thread: all of it is CPU work)."""
    if ndjson:
        return _submit(st, who, _header(spool.readline()), _lines(spool))
    return _submit(st, who, _header(spool.read()), None)


@router.post("", status_code=201, response_model=WorkflowOut, openapi_extra=SUBMIT_BODY)
async def create(request: Request, st: State, who: Caller) -> WorkflowOut:
    """Submit a workflow; it is validated completely before anything is written."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in (NDJSON, "application/json", ""):
        raise InvalidInput(f"send application/json or {NDJSON}, not {kind!r}")
    spool = await _spool(request, st.max_body_bytes)
    try:
        wf_id = await in_thread(_submit_body, st, who, spool, kind == NDJSON)
    finally:
        spool.close()
    return WorkflowOut.of(await run_in_threadpool(_get, st, wf_id))


def _get(st: ApiState, workflow_id: int) -> Any:
    with st.db.engine.connect() as conn:
        return workflows.get(conn, workflow_id)


@router.get("", response_model=WorkflowPage)
def list_workflows(
    st: State,
    who: Caller,
    status: Annotated[list[WorkflowStatus] | None, Query()] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[float | None, Query(ge=0, le=1e12, description="created at or after")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> WorkflowPage:
    """Newest first; yours and your groups' (admins: everyone's)."""
    with st.db.engine.connect() as conn:
        rows = workflows.list_recent(
            conn,
            status=[str(s) for s in status or []],
            owner=owner,
            name=name,
            since=since,
            before_id=cursor or None,
            visible_to=None if who.admin else (who.user, who.groups),
            limit=limit,
        )
    more = str(rows[-1].id) if len(rows) == limit else None
    return WorkflowPage(items=[WorkflowOut.of(w) for w in rows], next_cursor=more)


@router.get("/{workflow_id}", response_model=WorkflowDetail)
def get_workflow(workflow_id: int, st: State, who: JobCaller) -> WorkflowDetail:
    """A workflow with its works and their job counts by status."""
    wf = visible_workflow(st, who, check_id(workflow_id))
    with st.db.engine.connect() as conn:
        ws = works.list_for(conn, wf.id)
    return WorkflowDetail(**WorkflowOut.of(wf).model_dump(), works=[WorkOut.of(w) for w in ws])


@router.post("/{workflow_id}/{action}", status_code=202, response_model=CommandOut)
def act(workflow_id: int, action: Action, st: State, who: JobCaller) -> CommandOut:
    """Queue a command: abort, suspend, resume, retry (failed jobs), finish (start nothing new)."""
    visible_workflow(st, who, check_id(workflow_id), act=True)
    with st.db.begin() as conn:
        cid = commands.add(conn, workflow_id, action, now())
    return CommandOut(command_id=cid, workflow_id=workflow_id, action=action)


@router.get("/{workflow_id}/works", response_model=list[WorkOut])
def list_works(workflow_id: int, st: State, who: JobCaller) -> list[WorkOut]:
    wf = visible_workflow(st, who, check_id(workflow_id))
    with st.db.engine.connect() as conn:
        return [WorkOut.of(w) for w in works.list_for(conn, wf.id)]


@router.get("/{workflow_id}/jobs", response_model=JobPage)
def list_jobs(
    workflow_id: int,
    st: State,
    who: JobCaller,
    status: Annotated[list[JobStatus] | None, Query()] = None,
    work: Annotated[int | None, Query(ge=1, le=2**62, description="of this work id only")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobPage:
    """A page of jobs in id order, optionally of some statuses or one work (a workflow may
    have 10^6). An archived workflow's: 410, until it is restored."""
    wf = visible_workflow(st, who, check_id(workflow_id))
    refuse_archived(wf)
    with st.db.engine.connect() as conn:
        rows = jobs.list_for(
            conn,
            wf.id,
            status=[str(s) for s in status or []],
            work_id=work,
            after_id=cursor or 0,
            limit=limit,
        )
    more = str(rows[-1].id) if len(rows) == limit else None
    return JobPage(items=[JobOut.of(j) for j in rows], next_cursor=more)


@router.get(
    "/{workflow_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    workflow_id: int,
    request: Request,
    st: State,
    who: JobCaller,
    after: Annotated[int, Query(ge=0, le=2**62, description="last event id seen")] = 0,
) -> StreamingResponse:
    """Server-sent events of the workflow's changes; the stream ends when the workflow does,
    or when the caller's credentials stop working (checked every few seconds)."""
    await run_in_threadpool(visible_workflow, st, who, check_id(workflow_id))
    recheck = Recheck(lambda: visible_workflow(st, authenticate(request, st), workflow_id))

    async def feed() -> AsyncIterator[str]:
        last, quiet = after, 0.0
        while not await request.is_disconnected():
            refused = await recheck.refused()
            if refused is not None:
                yield f": closed: {' '.join(refused.split())}\n\n"
                return
            batch, status = await run_in_threadpool(_events, st, workflow_id, last)
            for ev in batch:
                last = ev["id"]
                data = {"workflow_id": workflow_id, "at": ev["created_at"], **ev["data"]}
                yield f"id: {last}\nevent: {ev['kind']}\ndata: {json.dumps(data)}\n\n"
            if not batch and status in TERMINAL_WORKFLOW:
                yield "event: end\ndata: {}\n\n"
                return
            quiet = 0.0 if batch else quiet + 0.5
            if quiet >= 15:
                quiet = 0.0
                yield ": keep-alive\n\n"
            if not batch:
                await asyncio.sleep(0.5)

    return StreamingResponse(
        feed(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _events(st: ApiState, workflow_id: int, after: int) -> tuple[list[dict[str, Any]], str]:
    with st.db.engine.connect() as conn:
        return events.since(conn, workflow_id, after), workflows.get(conn, workflow_id).status
