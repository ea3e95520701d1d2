"""The iDDS client's data calls on Orchid: collections, contents, messages and logs.

A transform's (work's) pseudo collections are its input and output, and its contents are
its jobs (a DOMA job is a pseudo content in iDDS too); messages are the workflow's
messages of kind ``idds``. Shapes and positional ``null``s as the iDDS server's
(``main/lib/idds/rest/v1/catalog.py``, ``messages.py``); access as every iDDS route.
"""

from __future__ import annotations

import io
import tarfile
import time
from typing import Any

from fastapi import APIRouter, Request, Response

from orchid.api.routes.idds import (
    IddsRoute,
    answer,
    caller_of,
    parse_id,
    requests_of,
)
from orchid.api.routes.idds_shapes import date_text, enum_of
from orchid.api.routes.messages import read_body
from orchid.core import idds as idds_core
from orchid.core import jsonvalues
from orchid.core.model import Workflow
from orchid.errors import InvalidInput, NotFound, OrchidError
from orchid.safefiles import open_log
from orchid.store import jobs, messages, works
from orchid.web.state import ApiState

__all__ = ["router"]

router = APIRouter(prefix="/idds", tags=["idds"], route_class=IddsRoute)
KIND = "idds"  # the kind of the workflow messages iDDS calls read and write
MAX_CONTENTS = 100_000  # rows one contents call returns at most
MAX_LOG_BYTES = 64 * 1024 * 1024  # log bytes one download_logs archive holds at most
INPUT, OUTPUT = 0, 1  # CollectionRelationType


def _null(value: str) -> str | None:
    return None if value in ("null", "None", "") else value


def _works(st: ApiState, wf: Workflow, transform_id: str) -> list[Any]:
    tid = parse_id(transform_id, "transform_id")
    with st.db.engine.connect() as conn:
        return [w for w in works.list_for(conn, wf.id) if tid is None or w.id == tid]


def _collection(wf: Workflow, work: Any, relation: int) -> dict[str, Any]:
    counts = {str(k): v for k, v in work.counts.items()}
    total = sum(counts.values())
    done = counts.get("succeeded", 0)
    failed = counts.get("failed", 0) + counts.get("cancelled", 0) + counts.get("skipped", 0)
    ended = str(work.status) in ("succeeded", "failed", "partial", "cancelled", "skipped")
    status = "Closed" if ended else "Open"
    suffix = ".input" if relation == INPUT else ""
    return {
        "coll_id": work.id,
        "request_id": wf.id,
        "workload_id": (wf.params.get("idds") or {}).get("workload_id") or wf.id,
        "transform_id": work.id,
        "coll_type": enum_of("CollectionType", "PseudoDataset"),
        "relation_type": enum_of(
            "CollectionRelationType", "Input" if relation == INPUT else "Output"
        ),
        "scope": "pseudo_dataset",
        "name": f"{wf.name}.{work.name}{suffix}",
        "bytes": 0,
        "status": enum_of("CollectionStatus", status),
        "substatus": enum_of("CollectionStatus", status),
        "total_files": total,
        "processed_files": done if relation == OUTPUT else done + failed,
        "processing_files": counts.get("running", 0) + counts.get("submitted", 0),
        "new_files": counts.get("waiting", 0) + counts.get("ready", 0),
        "failed_files": failed,
        "missing_files": 0,
        "created_at": date_text(work.started_at),
        "updated_at": date_text(work.finished_at or work.started_at),
    }


def _relations(relation_type: str) -> list[int]:
    rel = parse_id(relation_type, "relation_type") if relation_type not in ("0",) else 0
    if rel is None:
        return [INPUT, OUTPUT]
    if rel not in (INPUT, OUTPUT):
        return []  # logs: Orchid's works keep none as a collection
    return [rel]


@router.get(
    "/catalog/collections/{request_id}/{transform_id}/{workload_id}/{scope}/{name}/{relation_type}"
)
def get_collections(
    request_id: str,
    transform_id: str,
    workload_id: str,
    scope: str,
    name: str,
    relation_type: str,
    request: Request,
) -> Response:
    """The pseudo collections of a request's transforms: an input and an output per work."""
    st: ApiState = request.app.state.orchid
    out = []
    for wf in requests_of(st, caller_of(request), request_id, workload_id):
        for work in _works(st, wf, transform_id):
            for rel in _relations(relation_type):
                coll = _collection(wf, work, rel)
                if _null(scope) not in (None, coll["scope"]) or _null(name) not in (
                    None,
                    coll["name"],
                ):
                    continue
                out.append(coll)
    return answer(200, out)


def _content(wf: Workflow, job: Any) -> dict[str, Any]:
    status = idds_core.CONTENT_STATUS[str(job.status)]
    return {
        "content_id": job.id,
        "transform_id": job.work_id,
        "coll_id": job.work_id,
        "map_id": job.id,
        "request_id": wf.id,
        "workload_id": (wf.params.get("idds") or {}).get("workload_id") or wf.id,
        "scope": "pseudo_dataset",
        "name": str(job.args.get("input") or job.name),
        "min_id": 0,
        "max_id": 0,
        "content_type": enum_of("ContentType", "PseudoContent"),
        "content_relation_type": enum_of("ContentRelationType", "Output"),
        "status": enum_of("ContentStatus", status),
        "substatus": enum_of("ContentStatus", status),
        "retries": max(job.attempt - 1, 0),
        "path": None,
        "created_at": date_text(job.ready_at),
        "updated_at": date_text(job.finished_at or job.started_at or job.ready_at),
    }


@router.get(
    "/catalog/contents/{request_id}/{transform_id}/{workload_id}/{coll_scope}/{coll_name}"
    "/{relation_type}/{status}"
)
def get_contents(
    request_id: str,
    transform_id: str,
    workload_id: str,
    coll_scope: str,
    coll_name: str,
    relation_type: str,
    status: str,
    request: Request,
) -> Response:
    """The contents of a request's transforms: its jobs (at most 100,000)."""
    st: ApiState = request.app.state.orchid
    wanted = parse_id(status, "status") if status not in ("0",) else 0
    out: list[dict[str, Any]] = []
    for wf in requests_of(st, caller_of(request), request_id, workload_id):
        for work in _works(st, wf, transform_id):
            if INPUT not in _relations(relation_type) and OUTPUT not in _relations(relation_type):
                continue
            names = {f"{wf.name}.{work.name}", f"{wf.name}.{work.name}.input"}
            if _null(coll_name) not in (None, *names):
                continue
            after = 0
            with st.db.engine.connect() as conn:
                while len(out) < MAX_CONTENTS:
                    page = jobs.list_for(conn, wf.id, work_id=work.id, after_id=after, limit=1000)
                    for job in page:
                        row = _content(wf, job)
                        if wanted is None or row["status"]["attributes"]["_value_"] == wanted:
                            out.append(row)
                    if len(page) < 1000:
                        break
                    after = page[-1].id
    return answer(200, out[:MAX_CONTENTS])


@router.get("/message/{request_id}/{workload_id}/{transform_id}/{internal_id}")
def get_messages(
    request_id: str, workload_id: str, transform_id: str, internal_id: str, request: Request
) -> Response:
    """The request's messages sent with send_messages (Orchid messages of kind ``idds``)."""
    st: ApiState = request.app.state.orchid
    out: list[Any] = []
    for wf in requests_of(st, caller_of(request), request_id, workload_id):
        with st.db.engine.connect() as conn:
            rows, _ = messages.list_for(conn, wf.id, kind=KIND, limit=1000)
        out += [m.body for m in rows]
    return answer(200, out)


def _post(st: ApiState, sender: str, wf: Workflow, raw: bytes) -> None:
    try:
        body = jsonvalues.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"the messages are not standard JSON: {exc}") from None
    if not isinstance(body, list):
        body = [body]
    idds_core.check_classes(body, "messages")
    with st.db.begin() as conn:
        for msg in body:
            messages.post(conn, wf.id, sender=sender, kind=KIND, body=msg, now=time.time())


@router.post("/message/{request_id}/{workload_id}/{transform_id}/{internal_id}")
async def send_messages(
    request_id: str, workload_id: str, transform_id: str, internal_id: str, request: Request
) -> Response:
    """Send messages to a request: each is an Orchid message of kind ``idds``."""
    st: ApiState = request.app.state.orchid
    who = caller_of(request)
    (wf,) = requests_of(st, who, request_id, workload_id, act=True)[:1]
    raw = await read_body(request, messages.MAX_BODY_BYTES * 4)
    _post(st, who.user, wf, raw)
    return answer(200, {"request_id": wf.id})


def _archive(st: ApiState, wfs: list[Workflow]) -> tuple[bytes, int, int]:
    """A tar.gz of the jobs' stdout and stderr (``<request>/<work>/<job>.out|.err``), up to
    MAX_LOG_BYTES of logs; the number of logs in it, and of those left out for that bound."""
    buffer = io.BytesIO()
    size = left_out = count = 0
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for wf in wfs:
            after = 0
            while True:
                with st.db.engine.connect() as conn:
                    page = jobs.list_for(conn, wf.id, after_id=after, limit=1000)
                for job in page:
                    if not job.log_uri:
                        continue
                    for stream, suffix in (("stdout", "out"), ("stderr", "err")):
                        try:
                            with open_log(st.settings.log_dir, job.id, job.log_uri, stream) as f:
                                data = f.read(MAX_LOG_BYTES - size + 1)
                        except OrchidError:
                            continue
                        if size + len(data) > MAX_LOG_BYTES:
                            left_out += 1
                            continue
                        size += len(data)
                        info = tarfile.TarInfo(f"{wf.id}/{job.work_name}/{job.name}.{suffix}")
                        info.size, info.mtime = len(data), int(job.finished_at or time.time())
                        tar.addfile(info, io.BytesIO(data))
                        count += 1
                if len(page) < 1000:
                    break
                after = page[-1].id
    return buffer.getvalue(), count, left_out


@router.get("/logs/{workload_id}/{request_id}")
def download_logs(workload_id: str, request_id: str, request: Request) -> Response:
    """The request's job logs as one tar.gz (at most 64 MiB of logs; use `orchid logs` or
    ``GET /api/v1/jobs/{id}/logs`` for more)."""
    st: ApiState = request.app.state.orchid
    found = requests_of(st, caller_of(request), request_id, workload_id)
    data, count, left_out = _archive(st, found)
    if not count:
        raise NotFound("no logs yet")
    name = f"logs_{workload_id if workload_id != 'null' else found[0].id}_{found[0].id}.tar.gz"
    headers = {"Content-Disposition": f"attachment; filename={name}"}
    if left_out:
        headers["X-Orchid-Logs-Left-Out"] = str(left_out)
    return Response(data, 200, headers, media_type="application/gzip")
