"""The user payload cache: content-addressed uploads (Function-as-a-Task source trees).

A client names the sha256 of what it sends; the server hashes the bytes as they arrive
and refuses them if the digests differ. ``HEAD`` tells a client whether it already has
the object, so that it can skip the upload.

Privacy: each user sees only the objects they uploaded themselves (admins may read any).
An object someone else uploaded is a 404, exactly like one nobody uploaded, so no one can
learn what others have cached by probing digests; and having the bytes is the only way
to get a reference, since uploading is the only way to get one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from orchid.api.deps import Caller, JobCaller, State, now
from orchid.errors import InvalidInput, NotFound
from orchid.store import cache
from orchid.store.cache import SHA256_PATTERN, Blobs, CacheObject, Incoming
from orchid.web.errors import TooLarge
from orchid.web.state import ApiState
from orchid.wire import CacheObjectOut, CachePage

router = APIRouter(prefix="/cache", tags=["cache"])
DEFAULT_MAX_OBJECT_BYTES = 100 * 1024 * 1024
WRITE_BYTES = 1024 * 1024  # received bytes are written to disk in pieces of about this size
READ_BYTES = 1024 * 1024


def max_object_bytes() -> int:
    """The largest object accepted (413 above it). A dependency, so that an application can
    set another limit: ``app.dependency_overrides[max_object_bytes] = lambda: n``."""
    return DEFAULT_MAX_OBJECT_BYTES


MaxBytes = Annotated[int, Depends(max_object_bytes)]
Digest = Annotated[
    str,
    PathParam(pattern=SHA256_PATTERN, description="the sha256 of the bytes: 64 lowercase hex"),
]

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "the raw bytes (no Content-Encoding); at most 100 MiB by default",
    }
}


def blobs_of(st: ApiState) -> Blobs:
    return Blobs(st.settings.home / "cache")


def _etag(sha256: str) -> str:
    return f'"{sha256}"'


def _out(obj: CacheObject) -> CacheObjectOut:
    return CacheObjectOut.model_validate(obj, from_attributes=True)


def _add(st: ApiState, sha256: str, upload: Incoming, owner: str) -> tuple[CacheObject, bool]:
    with st.db.begin() as conn:
        return cache.add(conn, blobs_of(st), sha256, upload, owner=owner, now=now())


@router.put(
    "/{sha256}",
    status_code=201,
    response_model=CacheObjectOut,
    openapi_extra=UPLOAD_BODY,
    responses={
        200: {"description": "you had uploaded these bytes already", "model": CacheObjectOut},
        413: {"description": "the object is over the size limit"},
        422: {"description": "a malformed digest, or the bytes have another digest"},
    },
)
async def upload(
    sha256: Digest, request: Request, response: Response, st: State, who: JobCaller, limit: MaxBytes
) -> CacheObjectOut:
    """Upload an object under its sha256: 201 if new to you, 200 if you had it already."""
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding != "identity":
        raise InvalidInput(
            f"Content-Encoding {encoding!r} is not supported: send the raw bytes whose sha256 "
            "is in the path"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the object is {int(declared):,} bytes; the limit is {limit:,}")
    with blobs_of(st).receive() as incoming:
        pending = bytearray()
        async for chunk in request.stream():
            if incoming.size + len(pending) + len(chunk) > limit:
                raise TooLarge(f"the object is larger than the limit of {limit:,} bytes")
            pending += chunk
            if len(pending) >= WRITE_BYTES:
                data, pending = pending, bytearray()
                await run_in_threadpool(incoming.write, data)
        if pending:
            await run_in_threadpool(incoming.write, pending)
        obj, created = await run_in_threadpool(_add, st, sha256, incoming, who.user)
    response.status_code = 201 if created else 200
    response.headers["ETag"] = _etag(sha256)
    return _out(obj)


@router.head(
    "/{sha256}",
    response_class=Response,
    responses={200: {"description": "you have it; Content-Length is its size"}, 404: {}},
)
def probe(sha256: Digest, st: State, who: JobCaller) -> Response:
    """Whether you have uploaded this object (200, with its size) or not (404)."""
    with st.db.engine.connect() as conn:
        cache.find(conn, sha256, who.user)
    size = blobs_of(st).size(sha256)
    if size is None:  # the file was lost: the client must upload it again
        raise NotFound(f"you have no cached object {sha256}; upload it with PUT")
    return Response(headers={"Content-Length": str(size), "ETag": _etag(sha256)})


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(READ_BYTES):
            yield chunk


@router.get(
    "/{sha256}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {}},
)
def download(sha256: Digest, st: State, who: JobCaller) -> StreamingResponse:
    """The bytes of an object you uploaded (admins: anyone's)."""
    with st.db.engine.connect() as conn:
        cache.find(conn, sha256, None if who.admin else who.user)
    handle = blobs_of(st).open(sha256)  # stays readable if the object is deleted meanwhile
    if handle is None:
        raise NotFound(f"the bytes of cached object {sha256} are lost; upload them again")
    size = os.fstat(handle.fileno()).st_size
    return StreamingResponse(
        _chunks(handle),
        media_type="application/octet-stream",
        headers={"Content-Length": str(size), "ETag": _etag(sha256)},
        background=BackgroundTask(handle.close),
    )


@router.get("", response_model=CachePage)
def list_objects(
    st: State,
    who: Caller,
    cursor: Annotated[str | None, Query(pattern=SHA256_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CachePage:
    """Your cached objects, in digest order."""
    with st.db.engine.connect() as conn:
        rows = cache.list_for(conn, who.user, after=cursor, limit=limit)
    more = rows[-1].sha256 if len(rows) == limit else None
    return CachePage(items=[_out(o) for o in rows], next_cursor=more)


@router.delete("/{sha256}", status_code=204, response_class=Response)
def delete(sha256: Digest, st: State, who: Caller) -> Response:
    """Drop your reference; the bytes go when nobody else has uploaded them."""
    with st.db.begin() as conn:
        cache.remove(conn, blobs_of(st), sha256, owner=who.user)
    return Response(status_code=204)
