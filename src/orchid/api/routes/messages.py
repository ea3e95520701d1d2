"""Messages to a workflow: results and control messages posted by users or jobs, read in order."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from orchid.api.deps import JobCaller, State, now
from orchid.core import jsonvalues
from orchid.errors import InvalidInput
from orchid.store import messages
from orchid.store.messages import KIND_PATTERN, MAX_BODY_BYTES, Message
from orchid.web.access import check_id, visible_workflow
from orchid.web.errors import TooLarge
from orchid.web.state import ApiState
from orchid.wire import MessageIn, MessageOut, MessagePage

router = APIRouter(prefix="/workflows", tags=["messages"])
M = TypeVar("M", bound=BaseModel)
ENVELOPE_BYTES = 64 * 1024  # room for the kind and the JSON around the body
PAGE_BYTES = 8 * 1024 * 1024  # a page of messages holds about this much body at most

MESSAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": MessageIn.model_json_schema()}},
    }
}


async def read_body(request: Request, limit: int) -> bytes:
    """The raw request body, refused (413) past ``limit`` bytes whatever Content-Length says."""
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding != "identity":
        raise InvalidInput(f"Content-Encoding {encoding!r} is not supported here; send it plain")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is larger than {limit:,} bytes")
    data = bytearray()
    async for chunk in request.stream():
        if len(data) + len(chunk) > limit:
            raise TooLarge(f"the request body is larger than {limit:,} bytes")
        data += chunk
    return bytes(data)


def json_body(raw: bytes) -> Any:
    """The request body as a JSON value; a 400 saying why when it is not standard JSON."""
    try:
        return jsonvalues.loads(raw)
    except RecursionError:
        raise InvalidInput("the request body is nested too deeply") from None
    except ValueError as exc:  # not JSON, not UTF-8, or NaN/Infinity
        raise InvalidInput(f"the request body is not standard JSON: {exc}") from None


def model_body(raw: bytes, model: type[M]) -> M:
    """The request body read as ``model``; a 400 naming the first field that is wrong."""
    decoded = json_body(raw)
    try:
        return model.model_validate(decoded)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(f"{where}: {first['msg']}") from None


def _post(st: ApiState, sender: str, workflow_id: int, raw: bytes) -> Message:
    request = model_body(raw, MessageIn)
    size = messages.encoded_size(request.body)
    if size > MAX_BODY_BYTES:
        raise TooLarge(
            f"the message body is {size:,} bytes as JSON; the limit is {MAX_BODY_BYTES:,}. "
            "Put large data in a file (or the cache) and send its location"
        )
    with st.db.begin() as conn:
        return messages.post(
            conn, workflow_id, sender=sender, kind=request.kind, body=request.body, now=now()
        )


@router.post(
    "/{workflow_id}/messages",
    status_code=201,
    response_model=MessageOut,
    openapi_extra=MESSAGE_BODY,
    responses={413: {"description": "the body is over 1 MiB as JSON"}},
)
async def post_message(workflow_id: int, request: Request, st: State, who: JobCaller) -> MessageOut:
    """Post a message to a workflow you may act on; its watchers see a `message` event."""
    await run_in_threadpool(visible_workflow, st, who, check_id(workflow_id), act=True)
    raw = await read_body(request, MAX_BODY_BYTES + ENVELOPE_BYTES)
    message = await run_in_threadpool(_post, st, who.user, workflow_id, raw)
    return MessageOut.model_validate(message, from_attributes=True)


@router.get("/{workflow_id}/messages", response_model=MessagePage)
def list_messages(
    workflow_id: int,
    st: State,
    who: JobCaller,
    after: Annotated[int, Query(ge=0, le=2**62, description="the last message id seen")] = 0,
    kind: Annotated[str | None, Query(pattern=KIND_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MessagePage:
    """A workflow's messages, oldest first, after a message id, optionally of one kind.
    A page holds up to `limit` messages and about 8 MiB of bodies (at least one message)."""
    wf = visible_workflow(st, who, check_id(workflow_id))
    with st.db.engine.connect() as conn:
        rows, more = messages.list_for(
            conn, wf.id, after_id=after, kind=kind, limit=limit, max_bytes=PAGE_BYTES
        )
    return MessagePage(
        items=[MessageOut.model_validate(m, from_attributes=True) for m in rows],
        next_cursor=str(rows[-1].id) if more and rows else None,
    )
