"""Inbound: PanDA's job status messages through the real RabbitMQ drive the PanDA executor.

The fake PanDA server publishes a ``job_status`` message per job state change to a STOMP
queue; the executor polls only every 5 minutes, so the jobs can only end in time because
the messages told it which jobs to look at.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchid.config import PluginConfig
from orchid.executors.panda import PandaExecutor, PandaOptions
from orchid.notify import config
from orchid.notify.receiver import StatusReceiver
from tests.executors.contract import finals, python, spec, wait_for
from tests.executors.fake_panda import TOKEN, VO, FakePanda
from tests.notify import brokerkit
from tests.notify.brokerkit import BROKER, queue_name

pytestmark = [pytest.mark.xdist_group("panda")]


class Publisher:
    """What PanDA does: a STOMP message per job status change."""

    def __init__(self, destination: str) -> None:
        import stomp

        self.destination = destination
        self.lock = threading.Lock()
        self.sent = 0
        self.conn = stomp.Connection([(brokerkit.HOST, brokerkit.PORT)])
        self.conn.connect("guest", "guest", wait=True)

    def __call__(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.conn.send(self.destination, json.dumps(message), content_type="application/json")
            self.sent += 1

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.disconnect()


@pytest.fixture
def destination() -> Iterator[str]:
    brokerkit.require_stomp()
    name = queue_name()
    yield name
    with contextlib.suppress(Exception):
        brokerkit.rabbitmqctl("delete_queue", name.removeprefix("/queue/"))


def test_job_status_messages_replace_polling(
    tmp_path: Path, destination: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHID_TEST_PANDA_TOKEN", TOKEN)
    broker = config.broker(
        PluginConfig("mq", "stomp", {k: v for k, v in BROKER.items() if k != "type"}), "test"
    )
    publisher = Publisher(destination)
    receiver = StatusReceiver(broker, destination)
    with FakePanda(tmp_path, publish=publisher) as panda:
        opts = PandaOptions(
            url=panda.url,
            vo=VO,
            token_env="ORCHID_TEST_PANDA_TOKEN",
            python=sys.executable,
            poll_interval=300.0,  # the fallback only: far beyond the test's deadline
            status_broker="mq",
            status_destination=destination,
        )
        ex = PandaExecutor(tmp_path / "logs", opts, namespace="msg", status_messages=receiver)
        try:
            jobs = [spec(i, python(f"print({i} * 10)")) for i in range(1, 6)]
            ex.submit(jobs)
            done = finals(wait_for(ex, len(jobs)))
        finally:
            ex.close()
            publisher.close()
    assert {u.result for u in done.values()} == {10, 20, 30, 40, 50}
    assert receiver.received >= len(jobs)  # running and finished of each job
    # jobs were looked at when messages named them, not on a timer
    assert panda.calls.count("job/get_description") <= 2 * len(jobs) + 2
