"""Notifications over STOMP to the machine's real RabbitMQ, including a broker restart mid-run."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchid.bus.memory import MemoryBus
from orchid.config import PluginConfig
from orchid.engine.agent import AgentEnv
from orchid.engine.conductor import Conductor, Subscription
from orchid.notify import config
from orchid.notify.base import DeliveryError, Notification
from orchid.notify.stomp import StompSender
from orchid.store import deliveries, events
from orchid.store.db import Database
from tests.notify import brokerkit
from tests.notify.brokerkit import BROKER, DEADLINE_S, Consumer, broker_restarts, queue_name
from tests.waiting import wait_for

pytestmark = pytest.mark.xdist_group("rabbitmq")  # one process restarts the broker


@pytest.fixture
def destination() -> Iterator[str]:
    brokerkit.require_stomp()
    name = queue_name()
    yield name
    with contextlib.suppress(Exception):
        brokerkit.rabbitmqctl("delete_queue", name.removeprefix("/queue/"))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'orchid.db'}")
    database.upgrade()
    yield database
    database.dispose()


def broker() -> config.StompBroker:
    return config.broker(
        PluginConfig("mq", "stomp", {k: v for k, v in BROKER.items() if k != "type"}), "test"
    )


def emit(db: Database, n: int, start: int) -> list[int]:
    ids = []
    for i in range(start, start + n):
        with db.begin() as conn:
            events.emit(conn, 1, "work.succeeded", {"i": i}, time.time())
        ids.append(i)
    return ids


def test_a_batch_arrives_with_ids_and_json(destination: str) -> None:
    sender = StompSender(broker(), destination)
    batch = [
        Notification(f"orchid-{i}", i, "work.succeeded", 7, "wf", 1.5, {"work_id": i})
        for i in range(1, 4)
    ]
    try:
        sender.send(batch)
    finally:
        sender.close()
    consumer = Consumer(destination)
    try:
        consumer.wait_for({"orchid-1", "orchid-2", "orchid-3"})
        assert consumer.bodies[0] == {
            "id": "orchid-1",
            "kind": "work.succeeded",
            "workflow_id": 7,
            "workflow": "wf",
            "at": 1.5,
            "data": {"work_id": 1},
        }
    finally:
        consumer.close()


def test_an_unreachable_broker_is_a_delivery_error() -> None:
    dead = config.StompBroker(port=9, connect_timeout=2)
    sender = StompSender(dead, "/queue/nowhere")
    with pytest.raises(DeliveryError, match=r"cannot connect to the STOMP broker 127\.0\.0\.1:9"):
        sender.send([Notification("x-1", 1, "k", 1, "w", 0.0, {})])


def test_every_notification_arrives_across_a_broker_restart(db: Database, destination: str) -> None:
    opts = config.StompSubscriber(
        broker="mq",
        destination=destination,
        batch=20,
        backoff=0.2,
        max_backoff=1.0,
        max_attempts=1000,
    )
    env = AgentEnv(db=db, bus=MemoryBus(), clock=time.time, lease=10.0)
    sub = Subscription("mq", opts, StompSender(broker(), destination))
    conductor = Conductor(env, {"mq": sub}, check_every_s=0.0)
    conductor.run_once()  # the ledger starts here

    def sent() -> int:
        with db.begin() as conn:
            return int(deliveries.state(conn)[0]["sent"])

    def pump(until: object, what: str) -> None:
        def step() -> bool:
            conductor.run_once()
            return bool(until())  # type: ignore[operator]

        wait_for(what, step, DEADLINE_S, 0.1)

    total = 0
    total += len(emit(db, 60, 0))
    pump(lambda: sent() >= 30, "the first notifications")
    writer_done = threading.Event()

    def writer() -> None:  # events keep coming while the broker is away
        emit(db, 60, 60)
        writer_done.set()

    try:
        with broker_restarts() as stop:
            thread = threading.Thread(target=writer)
            thread.start()
            stop()
            down_until = time.monotonic() + 3.0
            while time.monotonic() < down_until:  # it fails and backs off meanwhile
                conductor.run_once()
                time.sleep(0.05)
            with db.begin() as conn:
                (row,) = deliveries.state(conn)
            assert row["failures"] >= 1 and "connect" in (row["last_error"] or "")
            brokerkit.start_app()
            thread.join(60)
        total += 60
        assert writer_done.is_set()
        pump(lambda: sent() >= total, f"all {total} notifications")
    finally:
        conductor.close()
    consumer = Consumer(destination)
    try:
        expected = {f"orchid-{i}" for i in range(1, total + 1)}
        consumer.wait_for(expected)
        time.sleep(0.5)  # anything sent twice has arrived by now too
        assert set(consumer.ids) == expected  # every one, and nothing else
        resent = len(consumer.ids) - len(expected)
        assert resent <= opts.batch  # at most the batch in flight when the broker went away
    finally:
        consumer.close()
    with db.begin() as conn:
        assert deliveries.parked(conn) == []
