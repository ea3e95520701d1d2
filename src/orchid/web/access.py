"""Who a request comes from, and what it may see or change.

Job tokens (``orc_job.…``, what a job of a work with ``api_token: true`` gets) are confined
in one place: every route or page that reaches a workflow goes through
:func:`visible_workflow` (or :func:`visible_job`), which keeps a job's token to its own
workflow, and those a job's token may not use at all call :func:`refuse_job_token`. A
workflow a caller may not see is a 404, exactly like one that does not exist, so that
probing ids tells nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from orchid.auth import Unauthenticated, can_act, can_see
from orchid.core.model import Job, Principal, Workflow
from orchid.errors import Archived, InvalidInput, NotFound, OrchidError
from orchid.store import jobs, workflows
from orchid.web.errors import Denied
from orchid.web.peers import peer
from orchid.web.state import ApiState

__all__ = [
    "MAX_ID",
    "STREAM_RECHECK_S",
    "Recheck",
    "authenticate",
    "check_id",
    "refuse_archived",
    "refuse_job_token",
    "refuse_worker_token",
    "visible_job",
    "visible_workflow",
]

STREAM_RECHECK_S = 5.0  # an open event stream re-checks its caller's credentials this often
MAX_ID = 2**62


def authenticate(request: HTTPConnection, st: ApiState) -> Principal:
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


def check_id(value: int) -> int:
    """An id as the database has them, or a 422 that says what ids are."""
    if not 1 <= value <= MAX_ID:
        raise InvalidInput(f"ids are whole numbers from 1 to 2^62; got {value}")
    return value


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


def refuse_archived(wf: Workflow) -> None:
    """410 for what an archived workflow no longer has live (its jobs, their logs)."""
    if wf.archived_at is not None:
        raise Archived(
            f"workflow {wf.id} is archived (retention): its works and job counts are "
            f"summarised, its jobs are in the archive; an admin restores it with "
            f"`orchid restore {wf.id}`"
        )


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
