"""One job, and its logs (with HTTP range requests for big ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from orchid.api.deps import Caller, State, check_id, visible_workflow
from orchid.api.schemas import JobOut
from orchid.core.model import Job
from orchid.errors import NotFound
from orchid.store import jobs

router = APIRouter(prefix="/jobs", tags=["jobs"])


def _job(st: State, who: Caller, job_id: int) -> Job:
    with st.db.engine.connect() as conn:
        job = jobs.get(conn, check_id(job_id))
    visible_workflow(st, who, job.workflow_id)
    return job


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: int, st: State, who: Caller) -> JobOut:
    return JobOut.of(_job(st, who, job_id))


@router.get(
    "/{job_id}/logs",
    response_class=FileResponse,
    responses={200: {"content": {"text/plain": {}}}, 206: {"description": "a byte range"}},
)
def get_logs(
    job_id: int,
    st: State,
    who: Caller,
    stream: Annotated[Literal["stdout", "stderr"], Query()] = "stdout",
) -> FileResponse:
    """The latest attempt's stdout or stderr; send `Range: bytes=...` for part of a big log."""
    job = _job(st, who, job_id)
    if not job.log_uri:
        raise NotFound(f"job {job_id} ({job.status}) has no log yet")
    path = Path(job.log_uri)
    if stream == "stderr":
        path = path.with_suffix(".err")
    if not path.is_file():
        raise NotFound(f"the {stream} of job {job_id} is no longer kept")
    return FileResponse(path, media_type="text/plain; charset=utf-8")
