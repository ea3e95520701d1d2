"""Who a job token speaks for: the owner of the job's workflow, while its attempt runs."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core import jobtoken
from orchid.core.model import Principal
from orchid.core.states import ACTIVE_JOB
from orchid.store.tables import jobs, workflows


def lookup(conn: Connection, token: str, key: bytes) -> Principal | None:
    """The principal of a job token, or None unless it is genuine (made with ``key``, see
    :func:`orchid.store.secrets.key`) and its attempt runs. Read-only."""
    parts = jobtoken.parse(token)
    if parts is None:
        return None
    job_id, attempt, _ = parts
    row = conn.execute(
        sa.select(jobs.c.workflow_id, jobs.c.attempt, jobs.c.status, workflows.c.owner)
        .join(workflows, workflows.c.id == jobs.c.workflow_id)
        .where(jobs.c.id == job_id)
    ).first()
    if row is None or row.attempt != attempt or row.status not in ACTIVE_JOB:
        return None
    if not jobtoken.valid(key, token, int(row.workflow_id)):
        return None
    return Principal(
        user=row.owner,
        groups=frozenset(),
        admin=False,
        method="job",
        workflow_id=int(row.workflow_id),
    )
