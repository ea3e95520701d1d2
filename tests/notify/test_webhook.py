"""Signed webhooks to a real HTTP receiver on 127.0.0.1 that is down for a while."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchid.bus.memory import MemoryBus
from orchid.engine.agent import AgentEnv
from orchid.engine.conductor import Conductor, Subscription
from orchid.notify.base import DeliveryError, Notification
from orchid.notify.config import WebhookSubscriber
from orchid.notify.webhook import SIGNATURE_HEADER, WebhookSender, signature, verify
from orchid.store import deliveries, events
from orchid.store.db import Database
from tests.notify.brokerkit import DEADLINE_S
from tests.waiting import wait_for

SECRET = "correct horse battery staple"


class Receiver:
    """Answers 503 to the first ``down`` requests; keeps every batch with a valid signature."""

    def __init__(self, down: int = 0) -> None:
        self.down = down
        self.requests = 0
        self.bad_signatures = 0
        self.ids: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                if receiver.requests <= receiver.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                if not verify(SECRET, body, self.headers.get(SIGNATURE_HEADER)):
                    receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                doc = json.loads(body)
                receiver.bodies.append(doc)
                receiver.ids.extend(n["id"] for n in doc["notifications"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(down=3)
    yield r
    r.close()


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'orchid.db'}")
    database.upgrade()
    yield database
    database.dispose()


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"a":1}'
    sig = signature(SECRET, body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify(SECRET, body, sig)
    assert not verify(SECRET, body + b" ", sig)
    assert not verify("other", body, sig)
    assert not verify(SECRET, body, None)


def test_batches_arrive_signed_after_the_receiver_comes_back(
    sqlite: Database, receiver: Receiver
) -> None:
    opts = WebhookSubscriber(
        url=receiver.url, secret=SECRET, batch=10, backoff=0.05, max_backoff=0.2
    )
    env = AgentEnv(db=sqlite, bus=MemoryBus(), clock=time.time, lease=10.0)
    sender = WebhookSender(opts.url, opts.key(), source="lab")
    opts = opts.model_copy(update={"source": "lab"})
    conductor = Conductor(env, {"hook": Subscription("hook", opts, sender)}, check_every_s=0.0)
    conductor.run_once()
    with sqlite.begin() as conn:
        for i in range(35):
            events.emit(conn, 1, "work.succeeded", {"i": i}, time.time())

    def all_sent() -> bool:
        conductor.run_once()
        with sqlite.begin() as conn:
            return int(deliveries.state(conn)[0]["sent"]) >= 35

    try:
        wait_for("35 notifications", all_sent, DEADLINE_S, 0.1)
    finally:
        conductor.close()
    assert receiver.ids == [f"lab-{i}" for i in range(1, 36)]  # in order, once each
    assert receiver.bad_signatures == 0
    assert receiver.requests == 3 + 4  # three refusals, then batches of 10, 10, 10, 5
    assert [len(b["notifications"]) for b in receiver.bodies] == [10, 10, 10, 5]
    assert receiver.bodies[0]["source"] == "lab"


def test_a_refusal_is_a_delivery_error(receiver: Receiver) -> None:
    sender = WebhookSender(receiver.url, SECRET)
    try:
        with pytest.raises(DeliveryError, match="answered 503"):
            sender.send([Notification("x-1", 1, "k", 1, "w", 0.0, {})])
        receiver.down = 0
        bad = WebhookSender(receiver.url, "wrong secret")
        with pytest.raises(DeliveryError, match="answered 401"):
            bad.send([Notification("x-1", 1, "k", 1, "w", 0.0, {})])
        bad.close()
    finally:
        sender.close()


def test_a_workflow_run_notifies_its_ends(sqlite: Database, tmp_path: Path) -> None:
    from orchid.engine.runner import make_runner
    from orchid.engine.submit import submit
    from orchid.settings import Settings
    from tests.engine.enginekit import drain

    receiver = Receiver()
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text(
        "job_events = true\n"
        f'[notify.hook]\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
        'events = ["workflow.*", "work.succeeded", "jobs.ended"]\n'
    )
    s = Settings.load(env={}, db=sqlite.url, home=home, executor="null", poll_interval=0.05)
    runner = make_runner(s, sqlite)
    ex = runner.executor
    template = {"name": "told", "works": [{"name": "a", "noop": True, "map": {"items": [{}] * 3}}]}
    try:
        runner.run_once()  # the conductor starts its ledger: events from now on are sent
        wf = submit(sqlite, template, base_dir=tmp_path, now=time.time())
        assert drain(runner, sqlite, wf).status == "succeeded"
        kinds = lambda: [n["kind"] for b in receiver.bodies for n in b["notifications"]]  # noqa: E731
        wait_for(
            "the end",
            lambda: runner.run_once() >= 0 and "workflow.succeeded" in kinds(),
            DEADLINE_S,
            0.1,
        )
    finally:
        ex.close()
        runner.close()
        receiver.close()
    assert kinds()[0] == "workflow.submitted" and kinds()[-1] == "workflow.succeeded"
    assert "work.succeeded" in kinds() and "work.running" not in kinds()
    (ended,) = [n for b in receiver.bodies for n in b["notifications"] if n["kind"] == "jobs.ended"]
    assert sorted(status for _, status in ended["data"]["jobs"]) == ["succeeded"] * 3
    assert ended["workflow"] == "told" and ended["workflow_id"] == wf
    assert len(receiver.ids) == len(set(receiver.ids))
