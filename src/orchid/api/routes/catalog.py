"""A workflow's data: its collections with file counts by status, and their files (read-only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from orchid.api.deps import Cursor, JobCaller, State, check_id, visible_workflow
from orchid.core.states import FileStatus
from orchid.store import catalog
from orchid.store.catalog import CollectionSummary
from orchid.wire import CollectionOut, FileOut, FilePage

router = APIRouter(prefix="/workflows", tags=["catalog"])


def _out(c: CollectionSummary) -> CollectionOut:
    return CollectionOut(
        id=c.id,
        workflow_id=c.workflow_id,
        work_id=c.work_id,
        scope=c.scope,
        name=c.name,
        manager=c.manager,
        status=c.status,
        created_at=c.created_at,
        files=c.files,
        counts={str(k): v for k, v in c.counts.items()},
    )


@router.get("/{workflow_id}/collections", response_model=list[CollectionOut])
def list_collections(workflow_id: int, st: State, who: JobCaller) -> list[CollectionOut]:
    """The workflow's collections (datasets), with how many files are in each status."""
    wf = visible_workflow(st, who, check_id(workflow_id))
    with st.db.engine.connect() as conn:
        return [_out(c) for c in catalog.list_collections(conn, wf.id)]


@router.get("/{workflow_id}/collections/{collection_id}/files", response_model=FilePage)
def list_files(
    workflow_id: int,
    collection_id: int,
    st: State,
    who: JobCaller,
    status: Annotated[list[FileStatus] | None, Query()] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FilePage:
    """A page of a collection's files in id order, optionally of some statuses."""
    wf = visible_workflow(st, who, check_id(workflow_id))
    with st.db.engine.connect() as conn:
        rows = catalog.list_files(
            conn,
            wf.id,
            check_id(collection_id),
            status=[str(s) for s in status or []],
            after_id=cursor or 0,
            limit=limit,
        )
    more = str(rows[-1].id) if len(rows) == limit else None
    return FilePage(
        items=[FileOut(id=f.id, name=f.name, size=f.size, status=f.status) for f in rows],
        next_cursor=more,
    )
