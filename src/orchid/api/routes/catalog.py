"""A workflow's data: its collections with file counts by status, and their files (read-only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from orchid.api.deps import Cursor, JobCaller, State
from orchid.core.states import FileStatus
from orchid.store import catalog
from orchid.web.access import check_id, visible_workflow
from orchid.wire import CollectionOut, FileOut, FilePage

router = APIRouter(prefix="/workflows", tags=["catalog"])


@router.get("/{workflow_id}/collections", response_model=list[CollectionOut])
def list_collections(workflow_id: int, st: State, who: JobCaller) -> list[CollectionOut]:
    """The workflow's collections (datasets), with how many files are in each status."""
    wf = visible_workflow(st, who, check_id(workflow_id))
    with st.db.engine.connect() as conn:
        return [CollectionOut.of(c) for c in catalog.list_collections(conn, wf.id)]


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
        items=[FileOut.of(f) for f in rows],
        next_cursor=more,
    )
