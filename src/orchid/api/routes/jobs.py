"""One job, and its logs (with HTTP range requests for big ones)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from orchid.api.deps import JobCaller, State
from orchid.logserve import SnapshotFileResponse, log_response
from orchid.web.access import visible_job
from orchid.wire import JobOut

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: int, st: State, who: JobCaller) -> JobOut:
    return JobOut.of(visible_job(st, who, job_id))


@router.get(
    "/{job_id}/logs",
    response_class=FileResponse,  # for the OpenAPI document: a plain file
    responses={200: {"content": {"text/plain": {}}}, 206: {"description": "a byte range"}},
)
def get_logs(
    job_id: int,
    st: State,
    who: JobCaller,
    stream: Annotated[Literal["stdout", "stderr"], Query()] = "stdout",
) -> SnapshotFileResponse:
    """The latest attempt's stdout or stderr; send `Range: bytes=...` for part of a big log."""
    return log_response(visible_job(st, who, job_id), stream, st.settings.log_dir)
