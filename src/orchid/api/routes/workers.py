"""Orchid workers (``orchid worker``): lease a queue's jobs, renew the leases, report what
ran, give the rest back. Open to workers' tokens only, each to its own queue (and every
other route refuses them: ``api.deps``). The bodies are JSON data, never code the server
runs (docs/architecture.md, "Orchid workers")."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Response
from pydantic import BaseModel

from orchid.api.deps import State, WorkerCaller
from orchid.core.model import Principal
from orchid.engine.workers import WorkerDesk
from orchid.executors.workerwire import (
    LeaseIn,
    LeaseOut,
    ReleaseIn,
    ReleaseOut,
    RenewIn,
    RenewOut,
    ReportIn,
    ReportOut,
)
from orchid.web.state import ApiState

router = APIRouter(prefix="/workers", tags=["workers"])


def _desk(st: ApiState, who: Principal) -> tuple[WorkerDesk, str]:
    queue = who.worker_queue
    if queue is None or st.workers is None:  # WorkerCaller lets only workers' tokens in
        raise RuntimeError("the worker routes need a worker's token and the worker desk")
    return st.workers, queue


def _json(answer: BaseModel) -> Response:
    """The answer as JSON, written by pydantic at once: the hot routes skip FastAPI's
    validating the model it was just given again (``response_model`` still documents it)."""
    return Response(answer.model_dump_json(), media_type="application/json")


@router.post("/lease", response_model=LeaseOut)
def lease(body: LeaseIn, st: State, who: WorkerCaller) -> Response:
    """Lease up to ``max`` ready jobs of the token's queue: each is this worker's until its
    lease (``lease_s``) runs out unless renewed, then it runs again elsewhere."""
    desk, queue = _desk(st, who)
    return _json(desk.lease(queue, body))


@router.post("/renew", response_model=RenewOut)
def renew(body: RenewIn, st: State, who: WorkerCaller) -> RenewOut:
    """Keep the leases of these attempts; the answer names those lost and those to cancel."""
    desk, queue = _desk(st, who)
    return desk.renew(queue, body)


@router.post("/report", response_model=ReportOut)
def report(body: ReportIn, st: State, who: WorkerCaller, background: BackgroundTasks) -> Response:
    """Record starts and ends (with the tails of their logs). 409, and nothing recorded,
    if the worker's leases no longer hold every attempt named: the answer's ``refused``
    lists them; drop those and report the rest. With ``want``, the answer also leases
    up to that many ready jobs (the children the ends released first among them)."""
    desk, queue = _desk(st, who)
    return _json(desk.report(queue, body, background.add_task))


@router.post("/release", response_model=ReleaseOut)
def release(body: ReleaseIn, st: State, who: WorkerCaller) -> ReleaseOut:
    """The worker stops: its jobs in flight are ready again at once, and the stopped
    attempts cost no retry."""
    desk, queue = _desk(st, who)
    return desk.release(queue, body)
