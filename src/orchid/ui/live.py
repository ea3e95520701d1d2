"""Live updates: server-sent events that carry a fresh summary whenever something changed.

A workflow's feed polls its newest event id (an index seek) twice a second and sends a
summary (status, actions, counts by work) when it moved, and also every few seconds
while the workflow runs, since job ends write no events. The summary is one grouped
count of the jobs; the feed waits at least ten times as long as that count took before
counting again, so a page left open on a million-job workflow costs the database little.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from orchid.core.states import TERMINAL_WORKFLOW
from orchid.store import monitor
from orchid.ui import views
from orchid.ui.context import Ui, ui_of
from orchid.ui.pages import summary, workflow_state
from orchid.web.access import Recheck, check_id, refuse_archived, visible_workflow

router = APIRouter()
TICK_S = 0.5
REFRESH_S = 2.0  # counts of a running workflow at least this often...
BACKOFF = 10.0  # ...but no more often than 10x the time they take
KEEPALIVE_S = 15.0
MAX_IDS = 100


def _sse(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _stream(feed: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        feed,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _last_event(ui: Ui, workflow_id: int) -> int:
    with ui.api.db.engine.connect() as conn:
        return monitor.last_event_id(conn, workflow_id)


@router.get("/workflows/{workflow_id}/live")
async def workflow_feed(request: Request, workflow_id: int) -> StreamingResponse:
    """``summary`` events for one workflow page; ``end`` once the workflow has ended."""
    ui = ui_of(request)
    viewer = await run_in_threadpool(ui.sessions.viewer, request)
    wf = await run_in_threadpool(visible_workflow, ui.api, viewer.principal, check_id(workflow_id))
    refuse_archived(wf)
    recheck = Recheck(
        lambda: visible_workflow(ui.api, ui.sessions.viewer(request).principal, workflow_id)
    )

    async def feed() -> AsyncIterator[str]:
        seen, last_sent, cost, quiet = -1, 0.0, 0.0, 0.0
        while not await request.is_disconnected():
            if await recheck.refused() is not None:
                return  # the page's next request sends the viewer to the login form
            newest = await run_in_threadpool(_last_event, ui, workflow_id)
            now = time.monotonic()
            due = now - last_sent >= max(REFRESH_S, BACKOFF * cost)
            if newest != seen or due:
                t0 = time.perf_counter()
                state = await run_in_threadpool(workflow_state, ui, workflow_id)
                cost = time.perf_counter() - t0
                last_sent, seen, quiet = now, newest, 0.0
                yield _sse("summary", summary(state))
                if state["workflow"].status in TERMINAL_WORKFLOW:
                    yield _sse("end", {})
                    return
            quiet += TICK_S
            if quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(TICK_S)

    return _stream(feed())


def _list_rows(ui: Ui, ids: list[int], who: Any) -> list[dict[str, Any]]:
    with ui.api.db.engine.connect() as conn:
        rows, _ = monitor.list_workflows(
            conn,
            visible_to=None if who.admin else (who.user, who.groups),
            ids=ids,
            limit=len(ids),
        )
    return [
        {
            "id": r.id,
            "status": r.status,
            "counts": dict(r.counts),
            "done_pct": views.done_pct(r.counts),
            "total": r.total,
        }
        for r in rows
    ]


@router.get("/live/workflows")
async def list_feed(
    request: Request, ids: Annotated[str, Query(max_length=2000, pattern=r"^[0-9,]*$")] = ""
) -> StreamingResponse:
    """``rows`` events for the workflows shown on a list page (visible ones only)."""
    ui = ui_of(request)
    viewer = await run_in_threadpool(ui.sessions.viewer, request)
    wanted = sorted({int(i) for i in ids.split(",") if i})[:MAX_IDS]
    recheck = Recheck(lambda: ui.sessions.viewer(request))

    async def feed() -> AsyncIterator[str]:
        previous: list[dict[str, Any]] | None = None
        cost, quiet = 0.0, 0.0
        while wanted and not await request.is_disconnected():
            if await recheck.refused() is not None:
                return
            t0 = time.perf_counter()
            rows = await run_in_threadpool(_list_rows, ui, wanted, viewer.principal)
            cost = time.perf_counter() - t0
            if rows != previous:
                previous, quiet = rows, 0.0
                yield _sse("rows", rows)
            else:
                quiet += REFRESH_S
                if quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
            await asyncio.sleep(max(REFRESH_S, BACKOFF * cost))

    return _stream(feed())
