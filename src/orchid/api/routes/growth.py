"""Workflows that grow while they run (Function-as-a-Task): add a work, close the workflow.

A work added here is appended to the workflow's template and checked exactly like one
written there; the server never looks inside its job arguments (a client's pickles stay
opaque bytes in base64 or in the cache).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from orchid.api.deps import JobCaller, State, now
from orchid.api.routes.messages import model_body, read_body
from orchid.api.threads import in_thread
from orchid.core.model import Principal
from orchid.core.template import check_values
from orchid.engine import extend
from orchid.store import workflows
from orchid.web.access import check_id, visible_workflow
from orchid.web.state import ApiState
from orchid.wire import AddedWorkOut, AddWorkIn, CloseIn, WorkflowOut

router = APIRouter(prefix="/workflows", tags=["workflows"])
MAX_WORK_BYTES = 16 * 1024 * 1024


def _add(st: ApiState, who: Principal, workflow_id: int, raw: bytes) -> extend.AddedWork:
    body = model_body(raw, AddWorkIn)
    check_values(body.work, "work")
    return extend.add_work(
        st.db,
        workflow_id,
        body.work,
        now(),
        st.settings.executor_names,
        data_managers=st.data_managers,
        by=(who.user, who.groups),
        max_works=st.settings.max_works,
    )


@router.post(
    "/{workflow_id}/works",
    status_code=201,
    response_model=AddedWorkOut,
    responses={200: {"description": "a work of that name was there already"}},
)
async def add_work(
    workflow_id: int, request: Request, response: Response, st: State, who: JobCaller
) -> AddedWorkOut:
    """Add a work to a workflow you may change that has not ended (idempotent by name)."""
    await run_in_threadpool(visible_workflow, st, who, check_id(workflow_id), act=True)
    raw = await read_body(request, MAX_WORK_BYTES)
    added = await in_thread(_add, st, who, workflow_id, raw)  # validates the whole grown template
    response.status_code = 201 if added.created else 200
    return AddedWorkOut.of(added)


def _close(st: ApiState, workflow_id: int, raw: bytes) -> WorkflowOut:
    body = model_body(raw or b"{}", CloseIn)
    extend.close(st.db, workflow_id, body.error, now())
    with st.db.engine.connect() as conn:
        return WorkflowOut.of(workflows.get(conn, workflow_id))


@router.post("/{workflow_id}/close", response_model=WorkflowOut)
async def close(workflow_id: int, request: Request, st: State, who: JobCaller) -> WorkflowOut:
    """No more works will be added to this open workflow: it ends once its works have.
    With an `error`, it fails (its workflow function raised). Closing again is harmless."""
    await run_in_threadpool(visible_workflow, st, who, check_id(workflow_id), act=True)
    raw = await read_body(request, 64 * 1024)
    return await run_in_threadpool(_close, st, workflow_id, raw)
