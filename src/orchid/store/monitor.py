"""Read models of the monitor pages and the metrics: aggregates computed in SQL.

No function here returns all the jobs or files of a workflow: they return counts, pages
and downsampled series, so a page of a workflow with a million jobs stays fast. Counts by
work and status are an index-only scan of ``ix_jobs_workflow_status``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.model import Job
from orchid.errors import NotFound
from orchid.store import jobs as job_store
from orchid.store.tables import collections, events, files, jobs, workflows, works

SortKey = Literal["id", "name", "owner", "status", "updated"]
SORTS: Mapping[str, sa.ColumnElement[Any]] = {
    "id": workflows.c.id,
    "name": workflows.c.name,
    "owner": workflows.c.owner,
    "status": workflows.c.status,
    "updated": workflows.c.updated_at,
}


@dataclass(frozen=True)
class WorkflowRow:
    """A workflow as listed: its row, plus its job counts by status."""

    id: int
    name: str
    owner: str
    share_group: str | None
    status: str
    message: str
    created_at: float
    updated_at: float
    finished_at: float | None
    finishing: bool
    counts: Mapping[str, int] = field(default_factory=dict)
    archived_at: float | None = None  # retention: counts are its summary's

    @property
    def total(self) -> int:
        return sum(self.counts.values())


_LIST_COLUMNS = (
    workflows.c.id,
    workflows.c.name,
    workflows.c.owner,
    workflows.c.share_group,
    workflows.c.status,
    workflows.c.message,
    workflows.c.created_at,
    workflows.c.updated_at,
    workflows.c.finished_at,
    workflows.c.finishing,
    workflows.c.archived_at,
    workflows.c.archive_summary,
)


def _row(r: Any, counts: Mapping[str, int]) -> WorkflowRow:
    if r.archive_summary is not None:  # archived (store/archive.py): its jobs are gone
        summed: dict[str, int] = {}
        for w in r.archive_summary:
            for status, n in (w.get("counts") or {}).items():
                summed[status] = summed.get(status, 0) + int(n)
        counts = summed
    return WorkflowRow(
        id=r.id,
        name=r.name,
        owner=r.owner,
        share_group=r.share_group,
        status=r.status,
        message=r.message,
        created_at=r.created_at,
        updated_at=r.updated_at,
        finished_at=r.finished_at,
        finishing=bool(r.finishing),
        counts=counts,
        archived_at=r.archived_at if r.archive_summary is not None else None,
    )


def _visible(q: sa.Select[Any], visible_to: tuple[str, frozenset[str]] | None) -> sa.Select[Any]:
    if visible_to is None:
        return q
    user, groups = visible_to
    return q.where(sa.or_(workflows.c.owner == user, workflows.c.share_group.in_(sorted(groups))))


def list_workflows(
    conn: Connection,
    *,
    visible_to: tuple[str, frozenset[str]] | None,
    status: Sequence[str] = (),
    owner: str | None = None,
    name: str | None = None,
    since: float | None = None,
    ids: Sequence[int] | None = None,
    sort: SortKey = "id",
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[WorkflowRow], int]:
    """A page of workflows with their job counts, and how many match in all.

    ``visible_to`` = (user, groups) keeps what that user may see (None: everything);
    ``name`` matches a part of the name, case-insensitively; ``ids`` keeps only those.
    """
    q = sa.select(*_LIST_COLUMNS)
    if status:
        q = q.where(workflows.c.status.in_(list(status)))
    if owner:
        q = q.where(workflows.c.owner == owner)
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        q = q.where(workflows.c.name.ilike(f"%{escaped}%", escape="\\"))
    if since is not None:
        q = q.where(workflows.c.created_at >= since)
    if ids is not None:
        q = q.where(workflows.c.id.in_(list(ids)))
    q = _visible(q, visible_to)
    total = int(conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one())
    column = SORTS[sort]
    order = [column.desc() if descending else column.asc()]
    if sort != "id":
        order.append(workflows.c.id.desc())
    rows = list(conn.execute(q.order_by(*order).offset(offset).limit(limit)))
    counts = job_counts(conn, [r.id for r in rows])
    return [_row(r, counts.get(r.id, {})) for r in rows], total


def job_counts(conn: Connection, workflow_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Jobs by status of each workflow (index-only)."""
    out: dict[int, dict[str, int]] = {i: {} for i in workflow_ids}
    if workflow_ids:
        for wf, status, n in conn.execute(
            sa.select(jobs.c.workflow_id, jobs.c.status, sa.func.count())
            .where(jobs.c.workflow_id.in_(list(workflow_ids)))
            .group_by(jobs.c.workflow_id, jobs.c.status)
        ):
            out[wf][status] = int(n)
    return out


def status_counts(conn: Connection, workflow_id: int, work_id: int | None = None) -> dict[str, int]:
    """Jobs of a workflow (or of one of its works) by status: the index read in its order."""
    q = sa.select(jobs.c.status, sa.func.count()).where(jobs.c.workflow_id == workflow_id)
    if work_id is not None:
        q = q.where(jobs.c.work_id == work_id)
    return {str(s): int(n) for s, n in conn.execute(q.group_by(jobs.c.status))}


@dataclass(frozen=True)
class WorkflowFacts:
    """What the workflow page shows beyond the workflow's row: the stored template, loop
    states, links between works, and whether ``finish`` was asked."""

    template: Mapping[str, Any]
    base_dir: str | None
    loops: Mapping[str, Any]
    links: tuple[tuple[str, str], ...]
    finishing: bool


def facts(conn: Connection, workflow_id: int) -> WorkflowFacts:
    row = conn.execute(
        sa.select(
            workflows.c.template,
            workflows.c.base_dir,
            workflows.c.loops,
            workflows.c.links,
            workflows.c.finishing,
        ).where(workflows.c.id == workflow_id)
    ).first()
    if row is None:
        raise NotFound(f"no workflow {workflow_id}")
    return WorkflowFacts(
        template=row.template,
        base_dir=row.base_dir,
        loops=row.loops or {},
        links=tuple((str(a), str(b)) for a, b in row.links or ()),
        finishing=bool(row.finishing),
    )


def recent_events(conn: Connection, workflow_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """The newest ``limit`` events of a workflow, oldest first (the timeline)."""
    rows = conn.execute(
        sa.select(events)
        .where(events.c.workflow_id == workflow_id)
        .order_by(events.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in reversed(list(rows))]


def last_event_id(conn: Connection, workflow_id: int) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0)).where(
                events.c.workflow_id == workflow_id
            )
        ).scalar_one()
    )


@dataclass(frozen=True)
class JobPage:
    items: list[Job]
    has_before: bool  # there are jobs before the first one shown
    has_after: bool  # ... and after the last one


def jobs_page(
    conn: Connection,
    workflow_id: int,
    *,
    work_id: int | None = None,
    status: str | None = None,
    after: int | None = None,
    before: int | None = None,
    last: bool = False,
    limit: int = 50,
    matching: int | None = None,
) -> JobPage:
    """A page of a workflow's jobs in id order, of one work and/or one status.

    Keyset pages: ``after`` an id (the next page), ``before`` an id (the previous one),
    or ``last`` (the final page). ``matching`` (how many jobs the filter matches, from
    the counts the page shows anyway) picks the plan: a work and a status seek the index
    in id order; a filter that matches a good part of the table walks the primary key
    (a page costs about ``limit`` rows), where an index seek would sort every match.
    """
    walk = False
    if matching is not None and not (work_id is not None and status is not None):
        top = conn.execute(sa.select(sa.func.max(jobs.c.id))).scalar() or 0
        walk = matching * 20 >= top
    # `+ 0` keeps the planner off an index for that column (SQLite and PostgreSQL alike)
    wf_col = jobs.c.workflow_id + 0 if walk else jobs.c.workflow_id
    q = (
        sa.select(jobs, works.c.name.label("work_name"))
        .join(works, works.c.id == jobs.c.work_id)
        .where(wf_col == workflow_id)
    )
    if work_id is not None:
        q = q.where((jobs.c.work_id + 0 if walk else jobs.c.work_id) == work_id)
    if status is not None:
        q = q.where(jobs.c.status == status)
    backwards = last or before is not None
    if after is not None:
        q = q.where(jobs.c.id > after)
    if before is not None:
        q = q.where(jobs.c.id < before)
    q = q.order_by(jobs.c.id.desc() if backwards else jobs.c.id).limit(limit + 1)
    rows = list(conn.execute(q))
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    items = [job_store._to_model(r, r.work_name) for r in rows]
    if backwards:
        return JobPage(items, has_before=more, has_after=before is not None)
    return JobPage(items, has_before=after is not None and after > 0, has_after=more)


# --- the data carousel -------------------------------------------------------------------


@dataclass(frozen=True)
class FileSeries:
    """Files of a workflow's collections over time, in ``len(times)`` buckets.

    ``by_status[s][i]``: files now in status ``s`` whose last change fell in bucket ``i``
    (``times[i]`` is the bucket's start); ``bytes_by_status`` the same in bytes. Changes
    before the first bucket count in it, changes after the last in the last.
    """

    times: list[float]
    width: float
    by_status: dict[str, list[int]]
    bytes_by_status: dict[str, list[int]]
    # files (and bytes) that came to disk in each bucket: ``files.available_at``
    staged: list[int] = field(default_factory=list)
    staged_bytes: list[int] = field(default_factory=list)

    def on_disk_bytes(self) -> list[int]:
        """Bytes on disk at the end of each bucket: staged so far minus deleted so far."""
        staged, gone = self.running(self.staged_bytes), self.cumulative(["deleted"], True)
        return [a - b for a, b in zip(staged, gone, strict=True)]

    def running(self, values: Sequence[int]) -> list[int]:
        out, total = [], 0
        for i in range(len(self.times)):
            total += values[i] if i < len(values) else 0
            out.append(total)
        return out

    def cumulative(self, statuses: Sequence[str], in_bytes: bool = False) -> list[int]:
        source = self.bytes_by_status if in_bytes else self.by_status
        out, running = [], 0
        for i in range(len(self.times)):
            running += sum(source[s][i] for s in statuses if s in source)
            out.append(running)
        return out


@dataclass(frozen=True)
class FileSummary:
    """A workflow's collections with their files' counts and bytes by status, and the
    series over time: all from one grouped scan of the files."""

    collections: list[dict[str, Any]]  # the collection rows
    counts: dict[int, dict[str, int]]  # collection id → status → files
    bytes: dict[int, dict[str, int]]  # collection id → status → bytes
    series: FileSeries


def has_collections(conn: Connection, workflow_id: int) -> bool:
    return (
        conn.execute(
            sa.select(collections.c.id).where(collections.c.workflow_id == workflow_id).limit(1)
        ).first()
        is not None
    )


def _floor(value: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    if dialect == "postgresql":
        return sa.cast(sa.func.floor(value), sa.Integer)
    # SQLite truncates towards zero: shift by one bucket so that times before `lo` floor
    # to -1 (clamped into the first bucket below) instead of 0 by accident
    return sa.cast(value + 1, sa.Integer) - 1


def file_summary(
    conn: Connection, workflow_id: int, lo: float, hi: float, buckets: int = 120
) -> FileSummary:
    """Collections, counts, bytes and the series between ``lo`` and ``hi`` (the workflow's
    life: known without reading the files, so one scan does everything)."""
    cols = [
        dict(r._mapping)
        for r in conn.execute(
            sa.select(collections)
            .where(collections.c.workflow_id == workflow_id)
            .order_by(collections.c.id)
        )
    ]
    width = max((hi - lo) / buckets, 1e-3)
    n = max(int((hi - lo) / width) + 1, 1)
    counts: dict[int, dict[str, int]] = {c["id"]: {} for c in cols}
    sizes: dict[int, dict[str, int]] = {c["id"]: {} for c in cols}
    by_status: dict[str, list[int]] = {}
    by_bytes: dict[str, list[int]] = {}
    staged, staged_bytes = [0] * n, [0] * n
    if cols:
        bucket = _floor((files.c.updated_at - lo) / width, conn.dialect.name).label("b")
        q = (
            sa.select(
                files.c.collection_id,
                files.c.status,
                bucket,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(files.c.size), 0),
            )
            .where(files.c.collection_id.in_([c["id"] for c in cols]))
            .group_by(files.c.collection_id, files.c.status, bucket)
        )
        for cid, status, b, count, size in conn.execute(q):
            i = min(max(int(b), 0), n - 1)
            counts[cid][status] = counts[cid].get(status, 0) + int(count)
            sizes[cid][status] = sizes[cid].get(status, 0) + int(size)
            by_status.setdefault(status, [0] * n)[i] += int(count)
            by_bytes.setdefault(status, [0] * n)[i] += int(size)
        arrived = _floor((files.c.available_at - lo) / width, conn.dialect.name).label("b")
        q = (
            sa.select(arrived, sa.func.count(), sa.func.coalesce(sa.func.sum(files.c.size), 0))
            .where(
                files.c.collection_id.in_([c["id"] for c in cols]),
                files.c.available_at.is_not(None),
            )
            .group_by(arrived)
        )
        for b, count, size in conn.execute(q):
            i = min(max(int(b), 0), n - 1)
            staged[i] += int(count)
            staged_bytes[i] += int(size)
    series = FileSeries(
        [lo + i * width for i in range(n)], width, by_status, by_bytes, staged, staged_bytes
    )
    return FileSummary(cols, counts, sizes, series)


# --- metrics ------------------------------------------------------------------------------


def totals(conn: Connection) -> dict[str, dict[str, int]]:
    """Workflows, works and jobs by status, over the whole database (the metrics gauges)."""
    out: dict[str, dict[str, int]] = {}
    for kind, table in (("workflows", workflows), ("works", works)):
        out[kind] = {
            str(s): int(n)
            for s, n in conn.execute(
                sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
            )
        }
    # by workflow first: the index's own order, so no sort of a million entries
    out["jobs"] = {}
    for _, status, n in conn.execute(
        sa.select(jobs.c.workflow_id, jobs.c.status, sa.func.count()).group_by(
            jobs.c.workflow_id, jobs.c.status
        )
    ):
        out["jobs"][status] = out["jobs"].get(status, 0) + int(n)
    return out
