"""Jobs made from files (the trigger's part of the data carousel), in batches.

:func:`release` turns available files into ready jobs as their collection's release
policy allows; :func:`pass_on` marks files processed (or failed) once the trigger has
passed their job's end on. Both work on a bounded batch of files per call, whatever
the size of the campaign.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.carousel import OnDisk, files_room, job_args, job_groups
from orchid.core.states import TERMINAL_JOB, FileStatus, JobStatus, WorkStatus
from orchid.store import works
from orchid.store.feeds import FeedRow, chunks, open_feed_rows
from orchid.store.tables import files, jobs
from orchid.store.tables import works as works_table

F, J = FileStatus, JobStatus


def _pending(conn: Connection, row: FeedRow) -> bool:
    """Whether files of the collection are still to come (staging, or not there yet)."""
    return (
        not row.sealed
        or conn.execute(
            sa.select(files.c.id)
            .where(files.c.collection_id == row.id, files.c.status.in_([F.NEW, F.STAGING]))
            .limit(1)
        ).first()
        is not None
    )


def release(conn: Connection, now: float, limit: int, max_args_bytes: int) -> int:
    """Make ready jobs from available files that no job has; return how many jobs. No job
    gets arguments over ``max_args_bytes`` (job_args_max_bytes): a long list of long urls
    is split over more jobs (:func:`orchid.core.carousel.job_groups`)."""
    feeds = {r.id: r for r in open_feed_rows(conn)}
    if not feeds:
        return 0
    params = _parameters(conn, {r.work_id for r in feeds.values()})  # running works only
    pending = {
        cid: _pending(conn, r)
        for cid, r in feeds.items()
        if _needs_pending(r) and r.work_id in params
    }
    eligible = [
        cid
        for cid, r in feeds.items()
        if r.work_id in params and not (r.feed.release == "per-collection" and pending[cid])
    ]
    if not eligible:
        return 0
    ready: dict[int, list[OnDisk]] = defaultdict(list)
    for r in conn.execute(
        sa.select(files.c.id, files.c.name, files.c.url, files.c.collection_id)
        .where(
            files.c.status == F.AVAILABLE,
            files.c.job_id.is_(None),
            files.c.collection_id.in_(eligible),
        )
        .order_by(files.c.id)
        .limit(limit)
    ):
        ready[int(r.collection_id)].append(OnDisk(int(r.id), str(r.name), r.url))
    if not ready:
        return 0
    made: Counter[int] = Counter()
    rows: list[dict[str, Any]] = []
    members: list[list[OnDisk]] = []
    for cid, on_disk in ready.items():
        row = feeds[cid]
        room = files_room(row.feed, params[row.work_id], _shown(row), max_args_bytes)
        for group in job_groups(row.feed, on_disk, pending.get(cid, False), room):
            rows.append(_job(row, params[row.work_id], group, now))
            members.append(group)
            made[row.work_id] += 1
    if not rows:
        return 0
    ids: list[int] = []
    for chunk in chunks(rows):
        ids.extend(
            int(i)
            for i in conn.execute(
                sa.insert(jobs).returning(jobs.c.id, sort_by_parameter_order=True), chunk
            ).scalars()
        )
    conn.execute(
        sa.update(files)
        .where(files.c.id == sa.bindparam("fid"), files.c.status == F.AVAILABLE)
        .values(status=F.PROCESSING, job_id=sa.bindparam("jid"), updated_at=now),
        [{"fid": f.id, "jid": jid} for jid, group in zip(ids, members, strict=True) for f in group],
    )
    conn.execute(
        sa.update(works_table)
        .where(works_table.c.id == sa.bindparam("wid"))
        .values(n_jobs=works_table.c.n_jobs + sa.bindparam("k")),
        [{"wid": w, "k": k} for w, k in made.items()],
    )
    works.add_remaining(conn, dict(made))
    return len(rows)


def _needs_pending(row: FeedRow) -> bool:
    return row.feed.release == "per-collection" or row.feed.files_per_job > 1


def _parameters(conn: Connection, work_ids: set[int]) -> dict[int, dict[str, Any]]:
    rows = conn.execute(
        sa.select(works_table.c.id, works_table.c.inputs, works_table.c.status).where(
            works_table.c.id.in_(work_ids)
        )
    )
    return {
        int(r.id): dict((r.inputs or {}).get("parameters") or {})
        for r in rows
        if r.status == WorkStatus.RUNNING
    }


def _shown(row: FeedRow) -> str:
    """The collection as its jobs see it: the name alone for the manager's own scope."""
    return row.name if row.scope == row.manager else row.key


def _job(
    row: FeedRow, params: dict[str, Any], group: Sequence[OnDisk], now: float
) -> dict[str, Any]:
    return {
        "workflow_id": row.workflow_id,
        "work_id": row.work_id,
        "name": f"{row.id}-{group[0].id}",
        "status": J.READY,
        "args": job_args(row.feed, params, _shown(row), group),
        "max_attempts": row.feed.job_attempts,
        "ready_at": now,
    }


def pass_on(conn: Connection, now: float, limit: int) -> int:
    """Files whose job ended (and whose end the trigger has passed on): processed, or failed.

    A retry that reopened a failed job takes its files back into processing."""
    rows = list(
        conn.execute(
            sa.select(files.c.id, jobs.c.id.label("job_id"), jobs.c.status)
            .join(jobs, jobs.c.id == files.c.job_id)
            .where(
                files.c.status == F.PROCESSING,
                jobs.c.propagated,
                jobs.c.status.in_(list(TERMINAL_JOB)),
            )
            .limit(limit)
        )
    )
    good = [r.id for r in rows if r.status == J.SUCCEEDED]
    bad = [r for r in rows if r.status != J.SUCCEEDED]
    for chunk in chunks(good):
        conn.execute(
            sa.update(files)
            .where(files.c.id.in_(chunk), files.c.status == F.PROCESSING)
            .values(status=F.PROCESSED, updated_at=now)
        )
    if bad:
        conn.execute(
            sa.update(files)
            .where(files.c.id == sa.bindparam("fid"), files.c.status == F.PROCESSING)
            .values(status=F.FAILED, error=sa.bindparam("err"), updated_at=now),
            [{"fid": r.id, "err": f"job {r.job_id} {r.status}"} for r in bad],
        )
    again = conn.execute(
        sa.update(files)
        .where(
            files.c.status == F.FAILED,
            sa.select(jobs.c.id)
            .where(
                jobs.c.id == files.c.job_id,
                jobs.c.status.in_([J.WAITING, J.READY, J.SUBMITTED, J.RUNNING]),
            )
            .exists(),
        )
        .values(status=F.PROCESSING, error=None, updated_at=now)
    )
    return len(rows) + max(again.rowcount, 0)


__all__ = ["pass_on", "release"]
