"""The machine's RabbitMQ with its STOMP plugin (127.0.0.1:61613, guest/guest), for tests.

``make services`` (.ci/services.sh) enables the plugin. A test that restarts the broker
uses ``rabbitmqctl stop_app`` / ``start_app`` and always starts it again.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest

from tests.waiting import wait_for

HOST, PORT = "127.0.0.1", 61613
BROKER = {"type": "stomp", "host": HOST, "port": PORT, "user": "guest", "password": "guest"}
DEADLINE_S = 90.0


def stomp_up() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=2):
            return True
    except OSError:
        return False


def require_stomp() -> None:
    if not stomp_up():
        if os.environ.get("CI"):
            pytest.fail("RabbitMQ STOMP is not on 127.0.0.1:61613; `make services` enables it")
        pytest.skip("RabbitMQ STOMP is not on 127.0.0.1:61613 (`make services` enables it)")


def queue_name() -> str:
    return f"/queue/orchid-test-{uuid.uuid4().hex[:10]}"


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@contextmanager
def broker_restarts() -> Iterator[Any]:
    """Yields a function that stops the broker's app; it is always started again after."""
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        rabbitmqctl("stop_app")

    try:
        yield stop
    finally:
        if stopped or not stomp_up():
            rabbitmqctl("start_app")
            wait_for("RabbitMQ STOMP to come back", stomp_up, DEADLINE_S, 0.1)


def start_app() -> None:
    rabbitmqctl("start_app")
    wait_for("RabbitMQ STOMP to come back", stomp_up, DEADLINE_S, 0.1)


class Consumer:
    """Reads a queue (client-individual acks) and keeps every message's Orchid id and body."""

    def __init__(self, destination: str) -> None:
        import stomp

        self.lock = threading.Lock()
        self.ids: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.conn = stomp.Connection([(HOST, PORT)], heartbeats=(0, 0))
        self.conn.set_listener("test", self)
        self.conn.connect("guest", "guest", wait=True)
        self.conn.subscribe(destination, id="1", ack="client-individual")

    def on_message(self, frame: Any) -> None:
        with self.lock:
            self.ids.append(frame.headers["orchid-message-id"])
            self.bodies.append(json.loads(frame.body))
        self.conn.ack(frame.headers["message-id"], frame.headers["subscription"])

    def wait_for(self, ids: set[str], timeout: float = DEADLINE_S) -> None:
        wait_for(f"{len(ids)} messages", lambda: ids <= set(self.ids), timeout, 0.1)

    def close(self) -> None:
        with suppress(Exception):
            self.conn.disconnect()
