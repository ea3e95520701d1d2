"""The conductor's delivery logic with an in-memory transport, on SQLite and PostgreSQL.

The real transports (RabbitMQ over STOMP, an HTTP receiver) are tested in tests/notify.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from orchid.bus.memory import MemoryBus
from orchid.engine.agent import AgentEnv
from orchid.engine.conductor import Conductor, Subscription
from orchid.notify.base import DeliveryError, Notification
from orchid.notify.config import WebhookSubscriber
from orchid.store import deliveries, events
from orchid.store.db import Database


class Inbox:
    """A transport that keeps what it was sent, failing the first ``fail`` tries."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.tries = 0
        self.got: list[Notification] = []

    def send(self, batch: Sequence[Notification]) -> None:
        self.tries += 1
        if self.tries <= self.fail:
            raise DeliveryError(f"down (try {self.tries})")
        self.got.extend(batch)

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def conductor(
    db: Database, inbox: Inbox, clock: Clock | None = None, **options: object
) -> Conductor:
    opts = WebhookSubscriber.model_validate({"url": "http://unused", **options})
    env = AgentEnv(db=db, bus=MemoryBus(), clock=clock or time.time, lease=5.0)
    return Conductor(env, {"sub": Subscription("sub", opts, inbox)}, check_every_s=0.0)


def emit(db: Database, n: int, kind: str = "work.succeeded", start: int = 0) -> None:
    with db.begin() as conn:
        for i in range(start, start + n):
            events.emit(conn, 1, kind, {"i": i}, time.time())


def test_delivers_new_events_in_order_in_batches(db: Database) -> None:
    emit(db, 3)  # before the subscriber existed: not sent (no flood of history)
    inbox = Inbox()
    c = conductor(db, inbox, batch=10)
    assert c.run_once() == 0
    emit(db, 25)
    while c.run_once():
        pass
    assert [n.data["i"] for n in inbox.got] == list(range(25))
    assert inbox.tries == 3  # 10 + 10 + 5
    ids = [n.id for n in inbox.got]
    assert len(set(ids)) == 25 and all(i.startswith("orchid-") for i in ids)
    with db.begin() as conn:
        (row,) = deliveries.state(conn)
    assert row["sent"] == 25 and row["failures"] == 0


def test_only_wanted_kinds_are_sent(db: Database) -> None:
    inbox = Inbox()
    c = conductor(db, inbox, events=["workflow.*", "work.failed"])
    c.run_once()
    for kind in ("work.running", "workflow.succeeded", "work.failed", "jobs.ended"):
        emit(db, 1, kind)
    while c.run_once():
        pass
    assert [n.kind for n in inbox.got] == ["workflow.succeeded", "work.failed"]


def test_failures_back_off_and_resend_the_same_ids(db: Database) -> None:
    clock = Clock()
    inbox = Inbox(fail=3)
    c = conductor(db, inbox, clock, backoff=10, max_backoff=25)
    c.run_once()
    emit(db, 4)
    waits = []
    for _ in range(3):
        assert c.run_once() == 0
        with db.begin() as conn:
            (row,) = deliveries.state(conn)
        waits.append(row["next_try_at"] - clock.now)
        assert c.run_once() == 0 and inbox.tries == len(waits)  # not due: no try at all
        clock.now = row["next_try_at"]
    assert waits == [10, 20, 25]  # doubling, capped
    assert c.run_once() == 4
    assert [n.data["i"] for n in inbox.got] == [0, 1, 2, 3]


def test_a_batch_refused_too_often_is_parked(db: Database) -> None:
    clock = Clock()
    inbox = Inbox(fail=1000)
    c = conductor(db, inbox, clock, max_attempts=3, backoff=1)
    c.run_once()
    emit(db, 2)
    for _ in range(5):
        c.run_once()
        clock.now += 100
    assert inbox.tries == 3  # then parked, not retried for ever
    with db.begin() as conn:
        (parked,) = deliveries.parked(conn, "sub")
        (row,) = deliveries.state(conn)
    assert len(parked["event_ids"]) == 2 and "down" in parked["error"]
    assert row["failures"] == 0
    inbox.fail = 0
    emit(db, 1, start=2)
    c.run_once()
    assert [n.data["i"] for n in inbox.got] == [2]  # goes on after the parked batch


@pytest.mark.postgres
def test_an_event_committed_late_is_not_skipped(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite writers commit in id order")
    inbox = Inbox()
    c = conductor(db, inbox)
    c.run_once()
    holding, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with db.begin() as conn:
            events.emit(conn, 1, "work.succeeded", {"i": "late"}, time.time())
            holding.set()
            release.wait(30)

    writer = threading.Thread(target=slow_writer)
    writer.start()
    holding.wait(30)
    emit(db, 2)  # larger ids, committed first
    while c.run_once():
        pass
    assert [n.data["i"] for n in inbox.got] == [0, 1]
    release.set()
    writer.join(30)
    while c.run_once():
        pass
    assert [n.data["i"] for n in inbox.got] == [0, 1, "late"]
    assert len({n.id for n in inbox.got}) == 3


def test_two_conductors_share_a_subscriber_without_sending_twice(db: Database) -> None:
    inbox = Inbox()
    a, b = conductor(db, inbox, batch=5), conductor(db, inbox, batch=5)
    a.run_once()
    emit(db, 40)
    for _ in range(40):
        a.run_once()
        b.run_once()
    assert sorted(n.data["i"] for n in inbox.got) == list(range(40))
