"""Messages posted to a workflow (results, control messages): rows, plus an outbox event each.

A message's body is any standard JSON value of at most ``MAX_BODY_BYTES`` once encoded;
NaN and infinities are refused here too, so that a body stored on SQLite can always be
read back on PostgreSQL (see ``orchid.core.jsonvalues``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.core import jsonvalues
from orchid.errors import InvalidInput, NotFound
from orchid.store import events
from orchid.store.tables import messages, workflows

MAX_BODY_BYTES = 1024 * 1024  # the encoded body (compact JSON, UTF-8)
KIND_PATTERN = r"^[a-z][a-z0-9_.-]{0,39}$"  # fits the kind column (40)
MAX_SENDER_CHARS = 200
_KIND = re.compile(KIND_PATTERN)


@dataclass(frozen=True)
class Message:
    id: int
    workflow_id: int
    sender: str
    kind: str
    body: Any
    created_at: float


def encoded_size(body: Any) -> int:
    """The size of ``body`` as compact UTF-8 JSON; InvalidInput if it is not standard JSON."""
    trouble = jsonvalues.problem(body)
    if trouble:
        raise InvalidInput(f"the message body {trouble}")
    try:
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"the message body is not a JSON value: {exc}") from None
    return len(text.encode())


def check_kind(kind: str) -> str:
    if not _KIND.fullmatch(kind):
        raise InvalidInput(
            f"message kind {kind[:50]!r} is not a short identifier: use 1 to 40 characters "
            "from a-z, 0-9, '_', '.', '-', starting with a letter (e.g. 'result', 'control')"
        )
    return kind


def post(
    conn: Connection, workflow_id: int, *, sender: str, kind: str, body: Any, now: float
) -> Message:
    """Store a message and its outbox event (``message``) in the caller's transaction."""
    check_kind(kind)
    if not 0 < len(sender) <= MAX_SENDER_CHARS:
        raise InvalidInput(f"the sender must be 1 to {MAX_SENDER_CHARS} characters")
    size = encoded_size(body)
    if size > MAX_BODY_BYTES:
        raise InvalidInput(
            f"the message body is {size:,} bytes as JSON; the limit is {MAX_BODY_BYTES:,}. "
            "Put large data in a file and send its location"
        )
    exists = conn.execute(sa.select(workflows.c.id).where(workflows.c.id == workflow_id)).first()
    if exists is None:
        raise NotFound(f"no workflow {workflow_id}; `orchid status` lists the workflows")
    message_id = conn.execute(
        sa.insert(messages)
        .values(workflow_id=workflow_id, sender=sender, kind=kind, body=body, created_at=now)
        .returning(messages.c.id)
    ).scalar_one()
    # the event names the message; watchers fetch the body (up to 1 MiB) if they want it
    events.emit(
        conn,
        workflow_id,
        "message",
        {"message_id": int(message_id), "kind": kind, "sender": sender},
        now,
    )
    return Message(int(message_id), workflow_id, sender, kind, body, now)


def list_for(
    conn: Connection,
    workflow_id: int,
    *,
    after_id: int = 0,
    kind: str | None = None,
    limit: int = 100,
    max_bytes: int | None = None,
) -> tuple[list[Message], bool]:
    """A workflow's messages newer than ``after_id``, oldest first, optionally of one kind;
    and whether more may follow the last one.

    ``max_bytes`` bounds the bodies of a page (about: as stored; at least one message), so
    that a page of big messages cannot take the server's memory: the sizes are read first,
    without the bodies.
    """
    where = [messages.c.workflow_id == workflow_id, messages.c.id > after_id]
    cut = False
    if kind is not None:
        where.append(messages.c.kind == kind)
    if max_bytes is not None:
        size = sa.func.length(sa.cast(messages.c.body, sa.Text))
        sizes = list(
            conn.execute(
                sa.select(messages.c.id, size).where(*where).order_by(messages.c.id).limit(limit)
            )
        )
        if not sizes:
            return [], False
        total, last = 0, sizes[0][0]
        for message_id, n in sizes:
            total += int(n or 0)
            if total > max_bytes and message_id != sizes[0][0]:
                break
            last = message_id
        if last != sizes[-1][0]:
            where.append(messages.c.id <= last)
            cut = True
    rows = conn.execute(sa.select(messages).where(*where).order_by(messages.c.id).limit(limit))
    out = [Message(r.id, r.workflow_id, r.sender, r.kind, r.body, r.created_at) for r in rows]
    return out, cut or len(out) == limit
