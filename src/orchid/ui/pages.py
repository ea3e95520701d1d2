"""The pages: workflows, one workflow, jobs of a work, one job, the data carousel."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from orchid.core.model import Workflow
from orchid.core.states import Action
from orchid.errors import InvalidInput, NotFound
from orchid.graph import model as graph_model
from orchid.graph.load import load
from orchid.graph.render import to_svg
from orchid.logserve import log_response
from orchid.safefiles import LogUnavailable, open_log
from orchid.store import commands, monitor, quotas, studies, works
from orchid.store import workflows as workflow_store
from orchid.ui import charts, views
from orchid.ui.context import Ui, ui_of
from orchid.ui.session import CSRF_FIELD, Viewer, read_form
from orchid.web.access import check_id, refuse_archived, visible_job, visible_workflow

router = APIRouter()
PAGE = 50
FILE_ORDER = ("processed", "processing", "available", "staging", "deleted", "failed", "new")
MAX_LIVE_WORKS = 200  # work rows on the page and in its live feed (a loop may have 10,000)
AGES = {"1h": 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
IdQuery = Annotated[int | None, Query(ge=0, le=2**62)]


def _viewer(request: Request) -> tuple[Ui, Viewer]:
    ui = ui_of(request)
    return ui, ui.sessions.viewer(request)


@router.get("/", name="workflows")
def workflows_page(
    request: Request,
    status: Annotated[list[str] | None, Query(max_length=20)] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
    age: Annotated[Literal["1h", "1d", "7d", "30d", "all"], Query()] = "all",
    sort: Annotated[monitor.SortKey, Query()] = "id",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """Every workflow the viewer may see, filtered and sorted, a page at a time."""
    ui, viewer = _viewer(request)
    who = viewer.principal
    wanted = views.statuses_of(status or [], views.WORKFLOW_STATUSES)
    now = time.time()
    with ui.api.db.engine.connect() as conn:
        rows, total = monitor.list_workflows(
            conn,
            visible_to=None if who.admin else (who.user, who.groups),
            status=wanted,
            owner=owner or None,
            name=name or None,
            since=now - AGES[age] if age in AGES else None,
            sort=sort,
            descending=order == "desc",
            offset=offset,
            limit=PAGE,
        )
        used = quotas.usage(conn, now, ui.api.settings.share_decay) if who.admin else []
    query = {"owner": owner or "", "name": name or "", "age": age, "sort": sort, "order": order}
    return ui.render(
        request,
        "workflows.html",
        viewer=viewer,
        rows=rows,
        now=now,
        wanted=wanted,
        query=query,
        page=views.page_numbers(offset, PAGE, total),
        quotas=used,
    )


def _workflow(ui: Ui, viewer: Viewer, workflow_id: int) -> Workflow:
    return visible_workflow(ui.api, viewer.principal, check_id(workflow_id))


def workflow_state(ui: Ui, workflow_id: int) -> dict[str, Any]:
    """Everything the workflow page shows that changes: used by the page and its live feed.
    One grouped count of the jobs (index-only), whatever their number."""
    with ui.api.db.engine.connect() as conn:
        row = workflow_store.get(conn, workflow_id)
        rows = works.list_for(conn, workflow_id)
        graph = load(conn, workflow_id, ui.templates, rows)
        facts = monitor.facts(conn, workflow_id)
        last_event = monitor.last_event_id(conn, workflow_id)
    totals: dict[str, int] = {}
    for w in rows:
        for s, n in w.counts.items():
            totals[str(s)] = totals.get(str(s), 0) + n
    return {
        "workflow": row,
        "graph": graph,
        "works": rows,
        "facts": facts,
        "totals": totals,
        "actions": views.actions(str(row.status), facts.finishing, totals.get("failed", 0)),
        "last_event": last_event,
    }


def summary(state: dict[str, Any]) -> dict[str, Any]:
    """The JSON the live feed sends: status, actions and counts by work."""
    wf = state["workflow"]
    return {
        "status": str(wf.status),
        "message": wf.message,
        "finishing": state["facts"].finishing,
        "actions": state["actions"],
        "totals": state["totals"],
        "done_pct": views.done_pct(state["totals"]),
        "works": [
            {
                "id": w.id,
                "name": w.name,
                "iteration": w.iteration,
                "status": str(w.status),
                "counts": {str(k): v for k, v in w.counts.items()},
            }
            for w in state["works"][-MAX_LIVE_WORKS:]
        ],
        "nodes": {
            n.name: {"status": n.status, "counts": dict(n.counts)} for n in state["graph"].nodes
        },
        "event": state["last_event"],
    }


@router.get("/workflows/{workflow_id}", name="workflow")
def workflow_page(request: Request, workflow_id: int, queued: str | None = None) -> Response:
    ui, viewer = _viewer(request)
    wf = _workflow(ui, viewer, workflow_id)
    if wf.archived_at is not None:
        return _archived_page(request, ui, viewer, wf)
    state = workflow_state(ui, workflow_id)
    now = time.time()
    with ui.api.db.engine.connect() as conn:
        evs = monitor.recent_events(conn, workflow_id, 200)
        compiled = ui.templates.get(conn, workflow_id, {w.name for w in state["works"]})
        collections = monitor.has_collections(conn, workflow_id)
        study_of = {s.work_id: s.id for s, _, _ in studies.of_workflow(conn, workflow_id)}
    names = {w.id: f"{w.name}" + (f"#{w.iteration}" if w.iteration else "") for w in state["works"]}
    timeline = [
        {
            "at": e["created_at"],
            "kind": e["kind"],
            "text": views.event_text(e["kind"], e["data"], names),
        }
        for e in evs
    ]
    spans = [
        charts.Span(names[w.id], str(w.status), w.started_at, w.finished_at)
        for w in state["works"][-60:]
    ]
    marks = [
        charts.Mark(e["created_at"], views.event_text(e["kind"], e["data"], names))
        for e in evs
        if e["kind"].startswith("command.") or e["kind"] in ("workflow.submitted",)
    ]
    link = str(request.url_for("jobs", workflow_id=workflow_id)) + "?work={work_id}"
    return ui.render(
        request,
        "workflow.html",
        viewer=viewer,
        s=state,
        wf=state["workflow"],
        now=now,
        svg=to_svg(state["graph"], link=link, standalone=False),
        template=compiled.template,
        scopes=compiled.analysis.scopes,
        timeline=timeline,
        timeline_svg=charts.timeline(spans, marks, now),
        collections=collections,
        studies=study_of,
        queued=queued if queued in views.ACTION_HELP else None,
        short=graph_model.short,
    )


def _archived_page(request: Request, ui: Ui, viewer: Viewer, wf: Workflow) -> Response:
    """An archived workflow: its summary (works and job counts as they were), no graph,
    jobs or events (they are in its archive file)."""
    with ui.api.db.engine.connect() as conn:
        rows = works.list_for(conn, wf.id)
    totals: dict[str, int] = {}
    for w in rows:
        for st, n in w.counts.items():
            totals[str(st)] = totals.get(str(st), 0) + n
    return ui.render(
        request,
        "archived.html",
        viewer=viewer,
        wf=wf,
        works=rows,
        totals=totals,
        now=time.time(),
    )


@router.post("/workflows/{workflow_id}/actions/{action}")
async def act(request: Request, workflow_id: int, action: Action) -> Response:
    """An action button: the same command rows as ``POST /api/v1/workflows/{id}/{action}``."""
    ui = ui_of(request)
    form = await read_form(request)
    viewer = await run_in_threadpool(ui.sessions.viewer, request)
    ui.sessions.check_post(
        request, viewer, form.get(CSRF_FIELD) or request.headers.get("x-csrf-token")
    )
    await run_in_threadpool(
        visible_workflow, ui.api, viewer.principal, check_id(workflow_id), act=True
    )

    def queue() -> None:
        with ui.api.db.begin() as conn:
            commands.add(conn, workflow_id, action, time.time())

    await run_in_threadpool(queue)
    target = str(request.url_for("workflow", workflow_id=workflow_id)) + f"?queued={action}"
    return RedirectResponse(target, 303)


@router.get("/workflows/{workflow_id}/jobs", name="jobs")
def jobs_page(
    request: Request,
    workflow_id: int,
    work_text: Annotated[str | None, Query(alias="work", max_length=19, pattern=r"^\d*$")] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    after: IdQuery = None,
    before: IdQuery = None,
    last: bool = False,
) -> Response:
    """A page of jobs, of one work or all, of one status or all; keyset pages by id."""
    ui, viewer = _viewer(request)
    refuse_archived(_workflow(ui, viewer, workflow_id))
    work = int(work_text) if work_text else None  # the form sends work= for all works
    if status and status not in views.JOB_STATUSES:
        raise InvalidInput(
            f"unknown job status {status!r}; use one of {', '.join(views.JOB_STATUSES)}"
        )
    with ui.api.db.engine.connect() as conn:
        rows = works.list_for(conn, workflow_id, with_counts=False)
        if work and work not in {w.id for w in rows}:
            raise NotFound(f"workflow {workflow_id} has no work {work}")
        counts = monitor.status_counts(conn, workflow_id, work or None)
        matching = counts.get(status, 0) if status else sum(counts.values())
        page = monitor.jobs_page(
            conn,
            workflow_id,
            work_id=work or None,
            status=status or None,
            after=after,
            before=before,
            last=last,
            limit=PAGE,
            matching=matching,
        )
        wf = workflow_store.get(conn, workflow_id)
    base = {"work": work or "", "status": status or ""}
    return ui.render(
        request,
        "jobs.html",
        viewer=viewer,
        wf=wf,
        works=rows,
        work=work,
        status=status or "",
        page=page,
        counts=counts,
        matching=matching,
        base=base,
        now=time.time(),
    )


LOG_TAIL = 32 * 1024


def _tail(log_root: Path, job: Any, stream: str, size: int = LOG_TAIL) -> dict[str, Any]:
    """The end of a job's log for its page: text, whether it was cut, and if it could be
    read at all (``note`` says why not: gone, or not a plain file inside the log folder)."""
    try:
        with open_log(log_root, job.id, job.log_uri, stream) as fh:
            fh.seek(0, 2)
            end = fh.tell()
            fh.seek(max(end - size, 0))
            data = fh.read()
    except LogUnavailable as exc:
        return {"text": "", "cut": False, "exists": False, "note": str(exc)}
    return {
        "text": data.decode("utf-8", errors="replace"),
        "cut": end > size,
        "exists": True,
        "note": "",
    }


@router.get("/jobs/{job_id}", name="job")
def job_page(request: Request, job_id: int) -> Response:
    ui, viewer = _viewer(request)
    job = visible_job(ui.api, viewer.principal, job_id)
    wf = _workflow(ui, viewer, job.workflow_id)
    logs = {}
    if job.log_uri:
        for stream in ("stdout", "stderr"):
            logs[stream] = _tail(ui.api.settings.log_dir, job, stream)
    return ui.render(request, "job.html", viewer=viewer, wf=wf, job=job, logs=logs, now=time.time())


@router.get("/jobs/{job_id}/log", name="job_log")
def job_log(
    request: Request, job_id: int, stream: Literal["stdout", "stderr"] = "stdout"
) -> Response:
    """The whole log of the latest attempt, as text (the page shows its tail)."""
    ui, viewer = _viewer(request)
    return log_response(
        visible_job(ui.api, viewer.principal, job_id), stream, ui.api.settings.log_dir
    )


@router.get("/workflows/{workflow_id}/data", name="data")
def data_page(request: Request, workflow_id: int) -> Response:
    """The data carousel: collections, files by status over time, bytes on disk."""
    ui, viewer = _viewer(request)
    wf = _workflow(ui, viewer, workflow_id)
    refuse_archived(wf)
    now = time.time()
    end = wf.finished_at or max(now, wf.updated_at)
    with ui.api.db.engine.connect() as conn:
        data = monitor.file_summary(conn, workflow_id, wf.created_at, end, buckets=120)
    series = data.series
    on_disk = ("available", "processing", "processed")
    files_chart = charts.area(
        series.times,
        {
            "staged": series.running(series.staged),
            "processed": series.cumulative(["processed", "deleted"]),
            "deleted": series.cumulative(["deleted"]),
            "failed": series.cumulative(["failed"]),
        },
        title="files staged to disk, processed and deleted (cumulative)",
        stacked=False,
    )
    buffer_chart = charts.area(
        series.times,
        {"on disk": series.on_disk_bytes()},
        title="disk buffer: bytes staged and not yet deleted",
        unit="B",
        stacked=False,
    )
    disk = {cid: sum(by.get(s, 0) for s in on_disk) for cid, by in data.bytes.items()}
    return ui.render(
        request,
        "data.html",
        viewer=viewer,
        wf=wf,
        collections=data.collections,
        counts=data.counts,
        disk=disk,
        files_chart=files_chart,
        buffer_chart=buffer_chart,
        now=now,
    )


@router.get("/workflows/{workflow_id}/graph.svg", name="graph_svg")
def graph_svg(request: Request, workflow_id: int) -> Response:
    """The task graph alone, for saving (``orchid graph`` makes PNG, DOT and Mermaid too)."""
    ui, viewer = _viewer(request)
    refuse_archived(_workflow(ui, viewer, workflow_id))
    with ui.api.db.engine.connect() as conn:
        graph = load(conn, workflow_id, ui.templates)
    return Response(to_svg(graph), media_type="image/svg+xml")
