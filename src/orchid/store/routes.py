"""Which executor runs which work: the rows a carrier may claim.

A work whose template names an executor gets a ``work_routes`` row at submission; works
without one run on the agents' default executor. Each carrier serves one executor and
claims only its jobs: a named executor's carrier those routed to it, the default one's
carrier those routed nowhere else. With a single executor there is no filter at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.store.tables import work_routes

# The works routed to an executor (``:executor``); a work without a route runs on the default.
_ROUTED = (
    "SELECT works.id FROM works JOIN work_routes ON work_routes.workflow_id = works.workflow_id"
    " AND work_routes.work = works.name WHERE work_routes.executor {op} :executor"
)


@dataclass(frozen=True)
class Route:
    """The jobs of one carrier: those of ``executor``, and unrouted ones if it is the default."""

    executor: str
    default: bool

    def where(self) -> str:
        """SQL on a ``jobs`` row: it is this carrier's (binds ``:executor``). A clause of
        the claim, adopt and reclaim statements (``store.dispatch``).

        ``+work_id``: no index on it is used for this test. Else SQLite reads every job
        of the routed works through the (work_id, name) index and sorts them, where the
        statements' own partial indexes (ready jobs in claim order, jobs in flight) find
        the few they want at once: a claim of 30 among 30,000 jobs of a worker queue took
        24 ms, 0.01 ms with it."""
        if self.default:
            return f"+work_id NOT IN ({_ROUTED.format(op='<>')})"
        return f"+work_id IN ({_ROUTED.format(op='=')})"


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
