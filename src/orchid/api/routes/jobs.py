"""One job, and its logs (with HTTP range requests for big ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from starlette.types import Send

from orchid.api.deps import JobCaller, State, visible_job
from orchid.api.schemas import JobOut
from orchid.core.model import Job
from orchid.errors import NotFound

router = APIRouter(prefix="/jobs", tags=["jobs"])


class SnapshotFileResponse(FileResponse):
    """A file sent as it was when the response began.

    A running job's log grows while it is sent; FileResponse declares the size it saw and
    then reads to the end of the file, and HTTP cannot carry more than the Content-Length
    it declared. Ranges are already exact, so only the whole-file answer needs this.
    """

    async def _handle_simple(self, send: Send, send_header_only: bool, send_pathsend: bool) -> None:
        if send_header_only or send_pathsend:
            await super()._handle_simple(send, send_header_only, send_pathsend)
            return
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        left = self.stat_result.st_size if self.stat_result else 0
        async with self._open_file() as file:
            while left > 0:
                chunk = await file.read(min(self.chunk_size, left))
                if not chunk:  # truncated meanwhile: nothing more to send
                    break
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
        if left > 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: int, st: State, who: JobCaller) -> JobOut:
    return JobOut.of(visible_job(st, who, job_id))


@router.get(
    "/{job_id}/logs",
    response_class=SnapshotFileResponse,
    responses={200: {"content": {"text/plain": {}}}, 206: {"description": "a byte range"}},
)
def get_logs(
    job_id: int,
    st: State,
    who: JobCaller,
    stream: Annotated[Literal["stdout", "stderr"], Query()] = "stdout",
) -> SnapshotFileResponse:
    """The latest attempt's stdout or stderr; send `Range: bytes=...` for part of a big log."""
    return log_response(visible_job(st, who, job_id), stream)


def log_response(job: Job, stream: Literal["stdout", "stderr"]) -> SnapshotFileResponse:
    """A job's log as it is now (also served by the monitor's job page)."""
    job_id = job.id
    if not job.log_uri:
        raise NotFound(f"job {job_id} ({job.status}) has no log yet")
    path = Path(job.log_uri)
    if stream == "stderr":
        path = path.with_suffix(".err")
    try:
        stat = path.stat()
    except OSError:
        stat = None
    if stat is None or not path.is_file():
        raise NotFound(f"the {stream} of job {job_id} is no longer kept")
    return SnapshotFileResponse(path, media_type="text/plain; charset=utf-8", stat_result=stat)
