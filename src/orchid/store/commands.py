"""User commands (abort, suspend, resume, retry) are rows, so they survive restarts."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core.states import Action
from orchid.errors import Archived
from orchid.store.tables import commands, workflows


def add(conn: Connection, workflow_id: int, kind: Action, now: float) -> int:
    """Queue a command and wake the clerk for its workflow.

    Refused (:class:`~orchid.errors.Archived`) for a workflow being archived or archived:
    the wake-up is an update of the workflow's row guarded on its archive state, so of a
    command and an archiving that meet, one loses (see store/archive.py, ``mark``)."""
    woken = conn.execute(
        sa.update(workflows)
        .where(workflows.c.id == workflow_id, workflows.c.archive_state.is_(None))
        .values(wake_seq=workflows.c.wake_seq + 1)
    ).rowcount
    if woken != 1:
        raise Archived(
            f"workflow {workflow_id} is archived (or being archived): its jobs are in the "
            f"archive; `orchid restore {workflow_id}` brings it back first"
        )
    cid = conn.execute(
        sa.insert(commands)
        .values(workflow_id=workflow_id, kind=kind, status="pending", created_at=now)
        .returning(commands.c.id)
    ).scalar_one()
    return int(cid)


def pending(conn: Connection, workflow_id: int) -> list[tuple[int, str]]:
    rows = conn.execute(
        sa.select(commands.c.id, commands.c.kind)
        .where(commands.c.workflow_id == workflow_id, commands.c.status == "pending")
        .order_by(commands.c.id)
    )
    return [(int(r.id), str(r.kind)) for r in rows]


def done(conn: Connection, command_id: int, status: str, message: str, now: float) -> None:
    conn.execute(
        sa.update(commands)
        .where(commands.c.id == command_id)
        .values(status=status, message=message, applied_at=now)
    )


def get(conn: Connection, command_id: int) -> tuple[str, str] | None:
    row = conn.execute(
        sa.select(commands.c.status, commands.c.message).where(commands.c.id == command_id)
    ).first()
    return (str(row.status), str(row.message)) if row else None
