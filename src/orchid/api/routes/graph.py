"""A workflow's task-level graph as JSON: what ``orchid graph --url`` draws."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from orchid.api.deps import JobCaller, State
from orchid.graph.load import load
from orchid.web.access import check_id, refuse_archived, visible_workflow

router = APIRouter(prefix="/workflows", tags=["workflows"])


class GraphNode(BaseModel):
    name: str
    status: str
    counts: dict[str, int] = Field(description="jobs of its latest iteration by status")
    iteration: int
    work_id: int | None
    loop: str | None
    notes: list[str] = Field(description="its condition and trigger, short")


class GraphEdge(BaseModel):
    source: str
    target: str
    kind: str = Field(description="after: a task dependency; jobs: job-level parents")


class GraphLoop(BaseModel):
    name: str
    works: list[str]
    iteration: int
    max_iterations: int
    status: str
    until: str


class GraphOut(BaseModel):
    workflow_id: int
    name: str
    status: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    loops: list[GraphLoop]


@router.get("/{workflow_id}/graph", response_model=GraphOut)
def get_graph(workflow_id: int, st: State, who: JobCaller) -> Any:
    """Works as nodes (status, job counts), their dependencies as edges, loops as groups."""
    wf = visible_workflow(st, who, check_id(workflow_id))
    refuse_archived(wf)  # its template is in the archive
    with st.db.engine.connect() as conn:
        return load(conn, wf.id).to_json()
