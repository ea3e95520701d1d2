"""The conductor's ledger: per subscriber, how far the outbox has been delivered.

Events get increasing ids, but on PostgreSQL a transaction that took an id may commit
after one that took a larger id: reading ``id > cursor`` alone would skip it for good.
So the ids below the cursor that were not seen yet are kept as *gaps*, with when they
were first missed, and read again each round until they turn up or are older than
``GAP_HORIZON_S`` (a rolled-back transaction leaves a gap that never fills). On SQLite
writers commit in id order, so gaps only come from rollbacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from orchid.store import claims
from orchid.store.tables import deliveries, events, parked_notifications, workflows

GAP_HORIZON_S = 600.0
MAX_GAPS = 10_000


@dataclass
class Ledger:
    """A subscriber's delivery state, leased by one conductor."""

    subscriber: str
    cursor: int
    gaps: dict[int, float] = field(default_factory=dict)  # event id → first missed at
    failures: int = 0
    sent: int = 0


def ensure(conn: Connection, names: Iterable[str], now: float) -> None:
    """Rows for new subscribers, starting after the newest event (no flood of history)."""
    have = set(conn.execute(sa.select(deliveries.c.subscriber)).scalars())
    new = [n for n in names if n not in have]
    if not new:
        return
    newest = conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0))).scalar_one()
    conn.execute(
        sa.insert(deliveries),
        [{"subscriber": n, "cursor": int(newest), "gaps": [], "updated_at": now} for n in new],
    )


def newest(conn: Connection) -> int:
    """The largest event id committed so far (0 for none)."""
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0))).scalar_one())


def claim(conn: Connection, subscriber: str, owner: str, now: float, lease: float) -> Ledger | None:
    """Lease the subscriber's row when it is free and due (its back-off has passed)."""
    free = sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now)
    pick = claims.pick(
        conn,
        sa.select(deliveries.c.subscriber).where(
            deliveries.c.subscriber == subscriber, free, deliveries.c.next_try_at <= now
        ),
    )
    row = conn.execute(
        sa.update(deliveries)
        .where(deliveries.c.subscriber.in_(pick.scalar_subquery()))
        .values(lease_owner=owner, lease_until=now + lease)
        .returning(deliveries.c.cursor, deliveries.c.gaps, deliveries.c.failures, deliveries.c.sent)
    ).first()
    if row is None:
        return None
    gaps = {int(i): float(t) for i, t in row.gaps or []}
    return Ledger(subscriber, int(row.cursor), gaps, int(row.failures), int(row.sent))


def pending(conn: Connection, ledger: Ledger, limit: int, now: float) -> list[dict[str, Any]]:
    """Events to look at: late arrivals in the gaps, then up to ``limit`` after the cursor.

    Updates ``ledger.gaps`` for what this read saw and missed (and forgets stale gaps);
    the caller advances the cursor with :func:`advance` once the batch is handled.
    """
    cols = [
        events.c.id,
        events.c.workflow_id,
        events.c.kind,
        events.c.data,
        events.c.created_at,
        workflows.c.name.label("workflow"),
    ]
    base = sa.select(*cols).select_from(
        events.outerjoin(workflows, workflows.c.id == events.c.workflow_id)
    )
    late: list[Any] = []
    if ledger.gaps:
        late = list(conn.execute(base.where(events.c.id.in_(list(ledger.gaps)))))
        for r in late:
            ledger.gaps.pop(int(r.id), None)
    rows = list(
        conn.execute(base.where(events.c.id > ledger.cursor).order_by(events.c.id).limit(limit))
    )
    expected = ledger.cursor + 1
    for r in rows:
        for missing in range(expected, int(r.id)):
            ledger.gaps.setdefault(missing, now)
        expected = int(r.id) + 1
    ledger.gaps = {
        i: t for i, t in sorted(ledger.gaps.items())[-MAX_GAPS:] if now - t < GAP_HORIZON_S
    }
    return [dict(r._mapping) for r in sorted(late + rows, key=lambda r: r.id)]


def advance(
    conn: Connection, ledger: Ledger, owner: str, cursor: int, delivered: int, now: float
) -> None:
    """The batch up to ``cursor`` is handled: move on, reset the failures, release the lease."""
    ledger.cursor = max(ledger.cursor, cursor)
    ledger.failures = 0
    ledger.sent += delivered
    conn.execute(
        sa.update(deliveries)
        .where(deliveries.c.subscriber == ledger.subscriber, deliveries.c.lease_owner == owner)
        .values(
            cursor=ledger.cursor,
            gaps=[[i, t] for i, t in sorted(ledger.gaps.items())],
            failures=0,
            next_try_at=0,
            last_error=None,
            sent=ledger.sent,
            lease_owner=None,
            lease_until=None,
            updated_at=now,
        )
    )


def failed(
    conn: Connection, ledger: Ledger, owner: str, error: str, retry_at: float, now: float
) -> None:
    """A try failed: count it and wait until ``retry_at``; cursor and gaps stay."""
    ledger.failures += 1
    conn.execute(
        sa.update(deliveries)
        .where(deliveries.c.subscriber == ledger.subscriber, deliveries.c.lease_owner == owner)
        .values(
            failures=ledger.failures,
            next_try_at=retry_at,
            last_error=error[:2000],
            lease_owner=None,
            lease_until=None,
            updated_at=now,
        )
    )


def park(
    conn: Connection, subscriber: str, event_ids: Sequence[int], error: str, now: float
) -> None:
    """Keep a batch the subscriber refused too often, for people to look at."""
    conn.execute(
        sa.insert(parked_notifications).values(
            subscriber=subscriber, event_ids=list(event_ids), error=error[:2000], created_at=now
        )
    )


def state(conn: Connection) -> list[dict[str, Any]]:
    """Every subscriber's ledger row, for status pages and tests."""
    return [
        dict(r._mapping)
        for r in conn.execute(sa.select(deliveries).order_by(deliveries.c.subscriber))
    ]


def parked(conn: Connection, subscriber: str | None = None) -> list[dict[str, Any]]:
    q = sa.select(parked_notifications).order_by(parked_notifications.c.id)
    if subscriber is not None:
        q = q.where(parked_notifications.c.subscriber == subscriber)
    return [dict(r._mapping) for r in conn.execute(q)]
