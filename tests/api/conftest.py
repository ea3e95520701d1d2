"""Fixtures of the REST API tests: a real uvicorn server on 127.0.0.1, users with local tokens,
httpx clients per user, and (opt-in) the agents running in-process so workflows progress.

The server runs in a daemon thread over the ``db`` fixture (SQLite and PostgreSQL); every
wait is bounded, and no test asserts how long anything took.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from orchid.api.app import PREFIX
from orchid.auth import AuthConfig
from orchid.core import jobtoken
from orchid.core.states import TERMINAL_WORKFLOW
from orchid.engine.runner import Runner, make_runner
from orchid.executors.base import Executor
from orchid.server import create_app
from orchid.settings import Settings
from orchid.store import secrets, tokens
from orchid.store.db import Database
from orchid.store.tables import jobs as job_rows
from tests.waiting import wait_for

MAX_BODY = 1024 * 1024  # the server's request body limit in these tests (the 413 tests)
WAIT_S = 30.0  # bounded waits: only reached when something is stuck

USERS: dict[str, dict[str, Any]] = {
    "alice": {"admin": False, "groups": ["physics"]},
    "bob": {"admin": False, "groups": ["physics"]},
    "carol": {"admin": False, "groups": []},
    "root": {"admin": True, "groups": []},
}


def noop_template(name: str = "wf", works: int = 1) -> dict[str, Any]:
    """A template of ``works`` noop works in a chain (one job each)."""
    ws: list[dict[str, Any]] = []
    for i in range(works):
        w: dict[str, Any] = {"name": f"w{i}", "noop": True}
        if i:
            w["after"] = [f"w{i - 1}"]
        ws.append(w)
    return {"name": name, "works": ws}


@dataclass
class Api:
    """A live server: its base URL, its settings and database, and each user's token."""

    base_url: str
    settings: Settings
    db: Database
    tokens: dict[str, str]
    token_ids: dict[str, int]
    recorder: ErrorRecorder
    _clients: list[httpx.Client] = field(default_factory=list)
    _plain: dict[str | None, httpx.Client] = field(default_factory=dict)

    def client(self, user: str | None = None, **kw: Any) -> httpx.Client:
        """A client as ``user`` (None: anonymous), shared unless ``kw`` asks for something
        else (``headers``, ``timeout``...); closed at teardown."""
        if not kw and user in self._plain:
            return self._plain[user]
        plain = not kw
        headers = dict(kw.pop("headers", {}))
        if user is not None:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        kw.setdefault("timeout", 30.0)
        kw.setdefault("verify", False)  # plain http; loading the CA bundle costs ~40 ms a client
        c = httpx.Client(base_url=self.base_url, headers=headers, **kw)
        self._clients.append(c)
        if plain:
            self._plain[user] = c
        return c

    def submit(
        self,
        user: str,
        template: dict[str, Any] | str | None = None,
        *,
        share_group: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"template": template or noop_template()}
        if share_group is not None:
            body["share_group"] = share_group
        if params is not None:
            body["params"] = params
        r = self.client(user).post("/workflows", json=body)
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    def status(self, wf_id: int) -> str:
        r = self.client("root").get(f"/workflows/{wf_id}")
        assert r.status_code == 200, r.text
        status: str = r.json()["status"]
        return status

    def wait_status(self, wf_id: int, *wanted: str, timeout: float = WAIT_S) -> str:
        wanted_set = set(wanted) or {str(s) for s in TERMINAL_WORKFLOW}
        return str(
            wait_for(
                f"workflow {wf_id} reaching {sorted(wanted_set)}",
                lambda: (s := self.status(wf_id)) in wanted_set and s,
                timeout,
            )
        )

    def job_token(self, wf_id: int) -> str:
        """A job token of the workflow's first job, which is made to look running (the
        carrier gives such tokens to the jobs of works with ``api_token: true``). Call it
        before agents run the job."""
        with self.db.begin() as conn:
            job_id, status = conn.execute(
                sa.select(job_rows.c.id, job_rows.c.status)
                .where(job_rows.c.workflow_id == wf_id)
                .order_by(job_rows.c.id)
                .limit(1)
            ).one()
            steps = ["waiting", "ready", "submitted", "running"]  # the legal way there
            assert status in steps, f"job {job_id} is {status} already"
            for step in steps[steps.index(status) + 1 :]:
                conn.execute(
                    sa.update(job_rows)
                    .where(job_rows.c.id == job_id)
                    .values(status=step, attempt=1)
                )
            key = secrets.key(conn, secrets.JOB_TOKEN_KEY, time.time())
        return jobtoken.make(key, wf_id, int(job_id), 1)

    def end_job(self, token: str) -> None:
        """The attempt of a job token ends (its token stops working)."""
        parts = jobtoken.parse(token)
        assert parts is not None
        with self.db.begin() as conn:
            conn.execute(
                sa.update(job_rows).where(job_rows.c.id == parts[0]).values(status="succeeded")
            )

    @property
    def server_errors(self) -> list[str]:
        """Exceptions that escaped the app (each a 500 or a broken stream), as text."""
        return [f"{type(e).__name__}: {e}" for e in self.recorder.errors]

    def close(self) -> None:
        for c in self._clients:
            c.close()


class ErrorRecorder:
    """ASGI wrapper that keeps the exceptions escaping the app instead of letting uvicorn log
    them from its thread (the app has already answered 500 by then).

    Tests read them from :attr:`Api.server_errors`. Formatting them in the server thread
    would race pytest's own traceback rendering: on Python 3.11 both call ``ast.parse``
    (traceback carets), whose recursion counter is shared by all threads, and pytest then
    dies with "SystemError: AST constructor recursion depth mismatch".
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.errors: list[BaseException] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            self.errors.append(exc)


def serve(app: Any, **options: Any) -> tuple[uvicorn.Server, threading.Thread, int]:
    """Start ``app`` on 127.0.0.1 on a free port in a daemon thread; return when it listens.
    ``options``: more of uvicorn's settings (``ws="none"``: a server without WebSockets)."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says so (proto 0 would leave Nagle on: ~40 ms per response)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        lifespan="off",
        proxy_headers=False,  # as `orchid server`: the app applies trusted proxies' headers
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.01)
    return server, thread, port


def make_tokens(db: Database) -> tuple[dict[str, str], dict[str, int]]:
    toks: dict[str, str] = {}
    ids: dict[str, int] = {}
    with db.begin() as conn:
        for user, spec in USERS.items():
            ids[user], toks[user] = tokens.create(
                conn, user=user, admin=spec["admin"], groups=spec["groups"], now=time.time()
            )
    return toks, ids


def api_settings(db: Database, home: Path, executor: str = "null") -> Settings:
    return Settings.load(
        env={}, home=home, db=db.url, executor=executor, poll_interval=0.05, workers=2
    )


@pytest.fixture
def executor_name() -> str:
    """The executor of the settings (and of ``agents``); override with a parametrize."""
    return "null"


@pytest.fixture
def api(db: Database, tmp_path: Path, executor_name: str) -> Iterator[Api]:
    """A live API server over the test's database, with tokens for alice, bob, carol, root."""
    home = tmp_path / "home"
    home.mkdir()
    with serve_api(api_settings(db, home, executor_name), db) as a:
        yield a


@contextmanager
def serve_api(settings: Settings, db: Database, **options: Any) -> Iterator[Api]:
    """A live API server over ``db`` with ``settings``, and tokens for alice, bob, carol, root
    (``options``: uvicorn's, as :func:`serve` takes them)."""
    app = create_app(settings, AuthConfig(), db=db, max_body_bytes=MAX_BODY)
    toks, ids = make_tokens(db)
    recorder = ErrorRecorder(app)
    server, thread, port = serve(recorder, **options)
    a = Api(f"http://127.0.0.1:{port}{PREFIX}", settings, db, toks, ids, recorder)
    try:
        yield a
    finally:
        a.close()
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def serve_for_workers(
    settings: Settings, db: Database, queue: str, **options: Any
) -> Iterator[tuple[Api, str]]:
    """:func:`serve_api` with the agents running beside it (in a thread) and a worker's
    token of ``queue``, made for user ``pilot``: what Orchid workers talk to."""
    with serve_api(settings, db, **options) as api:
        with db.begin() as conn:
            _, token = tokens.create(
                conn, user="pilot", admin=False, groups=[], now=time.time(), worker_queue=queue
            )
        runner = make_runner(settings, db)
        stop = threading.Event()
        errors: list[BaseException] = []

        def loop() -> None:
            try:
                runner.run(until=stop.is_set, check_every=0.05)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=loop, name="orchid-agents", daemon=True)
        thread.start()
        try:
            yield api, token
        finally:
            stop.set()
            runner.stop()
            thread.join(15)
            runner.close()  # its executors too
        assert not errors, errors
        assert not api.server_errors


@dataclass
class Agents:
    runner: Runner
    executor: Executor
    thread: threading.Thread
    errors: list[BaseException]


@pytest.fixture
def agents(api: Api) -> Iterator[Agents]:
    """The four agents in-process (one runner in a thread) on the API's database; opt-in."""
    runner = make_runner(api.settings, api.db)
    executor = runner.executor
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop() -> None:
        try:
            runner.run(until=stop.is_set, check_every=0.05)
        except BaseException as exc:  # reported at teardown
            errors.append(exc)

    thread = threading.Thread(target=loop, name="orchid-agents", daemon=True)
    thread.start()
    try:
        yield Agents(runner, executor, thread, errors)
    finally:
        stop.set()
        runner.stop()
        thread.join(timeout=15)
        executor.close()
        runner.close()
    assert not errors, f"the agents failed: {errors!r}"
