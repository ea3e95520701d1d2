"""Which executor runs which work: the rows a carrier may claim, and adopting lost jobs.

A work whose template names an executor gets a ``work_routes`` row at submission; works
without one run on the agents' default executor. Each carrier serves one executor and
claims only its jobs: a named executor's carrier those routed to it, the default one's
carrier those routed nowhere else. With a single executor there is no filter at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from orchid.core.states import ACTIVE_JOB
from orchid.store import claims
from orchid.store.tables import jobs, work_routes, works


@dataclass(frozen=True)
class Route:
    """The jobs of one carrier: those of ``executor``, and unrouted ones if it is the default."""

    executor: str
    default: bool

    def jobs_filter(self) -> sa.ColumnElement[bool]:
        routed = sa.select(works.c.id).join(
            work_routes,
            sa.and_(
                work_routes.c.workflow_id == works.c.workflow_id,
                work_routes.c.work == works.c.name,
            ),
        )
        if self.default:
            elsewhere = routed.where(work_routes.c.executor != self.executor)
            return jobs.c.work_id.not_in(elsewhere.scalar_subquery())
        mine = routed.where(work_routes.c.executor == self.executor)
        return jobs.c.work_id.in_(mine.scalar_subquery())


def add(conn: Connection, workflow_id: int, routes: Mapping[str, str]) -> None:
    """Record the executor of each named work of a workflow (at submission)."""
    if routes:
        conn.execute(
            sa.insert(work_routes),
            [{"workflow_id": workflow_id, "work": w, "executor": e} for w, e in routes.items()],
        )


def of_workflow(conn: Connection, workflow_id: int) -> dict[str, str]:
    rows = conn.execute(
        sa.select(work_routes.c.work, work_routes.c.executor).where(
            work_routes.c.workflow_id == workflow_id
        )
    )
    return {str(r.work): str(r.executor) for r in rows}


def adopt_lost(
    conn: Connection, owner: str, now: float, lease: float, route: Route | None, limit: int
) -> list[Row[Any]]:
    """Take over in-flight jobs whose carrier's lease ran out, keeping their attempt.

    For executors whose jobs outlive their agent: the new carrier hands the same attempt
    (the same key) to its executor, which re-attaches to the job instead of running it
    again. Jobs whose cancellation was asked are left to ``reclaim_lost``.
    """
    where = [
        jobs.c.status.in_(list(ACTIVE_JOB)),
        jobs.c.lease_until < now,
        sa.not_(jobs.c.cancel_requested),
    ]
    if route is not None:
        where.append(route.jobs_filter())
    ids = claims.pick(conn, sa.select(jobs.c.id).where(*where).order_by(jobs.c.id).limit(limit))
    stmt = (
        sa.update(jobs)
        .where(jobs.c.id.in_(ids.scalar_subquery()))
        .values(owner=owner, lease_until=now + lease)
        .returning(
            jobs.c.id, jobs.c.workflow_id, jobs.c.work_id, jobs.c.name, jobs.c.args, jobs.c.attempt
        )
    )
    return sorted(conn.execute(stmt), key=lambda r: r.id)
