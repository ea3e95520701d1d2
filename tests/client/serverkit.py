"""A real Orchid server for tests: uvicorn on 127.0.0.1 and the agents, in threads.

One server per test module (SQLite in a temporary folder, the local executor); each test
submits its own workflows. Users: alice (group physics), bob, and root (admin).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from orchid.auth import AuthConfig
from orchid.client import Client, Retry
from orchid.engine.runner import make_runner
from orchid.server import create_app
from orchid.settings import Settings
from orchid.store import tokens
from orchid.store.db import Database

FAST = Retry(attempts=3, backoff=0.01, max_delay=0.05)


@dataclass(frozen=True)
class Server:
    url: str
    tokens: dict[str, str]  # user -> token
    home: Path

    def client(self, user: str | None = "alice", **options: object) -> Client:
        token = self.tokens[user] if user else None
        return Client(self.url, token, retry=FAST, timeout=20, **options)  # type: ignore[arg-type]


@contextmanager
def serve(home: Path, **settings: object) -> Iterator[Server]:
    """Serve the API over SQLite in ``home`` with the agents running, until the block ends
    (``settings``: more settings, e.g. ``data_managers``, or ``db``: another database)."""
    settings = Settings.load(
        env={},
        home=home,
        db=str(settings.pop("db", None) or home / "orchid.db"),
        poll_interval=0.05,
        workers=4,
        env_passthrough="FAT_*,ORCHID_FAT_CACHE",  # what the tests' jobs are told
        **settings,
    )
    db = Database(settings.db_url)
    db.ensure_schema()
    made: dict[str, str] = {}
    with db.begin() as conn:
        for user, groups, admin in (("alice", ["physics"], False), ("bob", [], False)):
            made[user] = tokens.create(conn, user=user, admin=admin, groups=groups, now=1.0)[1]
        made["root"] = tokens.create(conn, user="root", admin=True, groups=[], now=1.0)[1]

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # no Nagle
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    http = uvicorn.Server(
        uvicorn.Config(create_app(settings, AuthConfig(), db=db), log_level="warning")
    )
    serving = threading.Thread(target=http.run, kwargs={"sockets": [sock]}, daemon=True)
    serving.start()
    runner = make_runner(settings, db)
    executor = runner.executor
    agents = threading.Thread(target=runner.run, name="agents", daemon=True)
    agents.start()
    deadline = time.monotonic() + 20
    while not http.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield Server(f"http://127.0.0.1:{port}", made, home)
    finally:
        runner.stop()
        http.should_exit = True
        agents.join(20)
        serving.join(20)
        executor.close()
        runner.close()
        sock.close()
        db.dispose()
