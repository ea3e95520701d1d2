"""The worker channel (``/api/v1/workers/channel``) against a real server (SQLite and
PostgreSQL), where it differs from the routes: bad frames answered 4xx on a channel that
stays usable; handshakes refused as the routes refuse them, with no fallback to requests;
HTTP requests where the server has no WebSockets or the channel broke, the channel opened
again later; a token revoked while its channel is open ends the channel."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from orchid.api.routes import workers as worker_routes
from orchid.client.errors import Forbidden, Unauthorized, Unreachable
from orchid.engine.workers import WorkerDesk
from orchid.errors import LeaseLost
from orchid.executors.local import LocalExecutor
from orchid.executors.workerwire import (
    CHANNEL,
    Attempt,
    LeaseIn,
    ReleaseIn,
    RenewIn,
    ReportIn,
    WorkerUpdate,
)
from orchid.settings import Settings
from orchid.store import tokens
from orchid.store.db import Database
from orchid.store.tables import jobs as job_rows
from orchid.worker import Worker, WorkerOptions
from orchid.worker.channel import RETRY_S, ChannelLessor
from orchid.worker.http import API
from tests.api.conftest import MAX_BODY, Api, serve_for_workers
from tests.api.test_workers import template
from tests.api.workerchannel import Answer, ChannelClient
from tests.waiting import wait_for

# leases long enough that no test's job lapses while it looks at it
SETTINGS = """
[engine]
lease_seconds = 60

[executors]
executor = "local"
workers = 2

[executors.gpu]
type = "worker"
"""
PRINT = ["python", "-c", "print('on the worker')"]  # the worker-run work's command


@dataclass
class Server:
    api: Api
    token: str  # a worker's token of queue gpu
    root: str  # the server's URL, without /api/v1
    lessors: list[ChannelLessor] = field(default_factory=list)

    def lessor(self, token: str | None = None, **kw: Any) -> ChannelLessor:
        lessor = ChannelLessor(self.root, self.token if token is None else token, **kw)
        self.lessors.append(lessor)
        return lessor

    def row(self, job_id: int) -> Any:
        with self.api.db.engine.connect() as conn:
            return conn.execute(sa.select(job_rows).where(job_rows.c.id == job_id)).one()

    def revoke(self) -> None:
        with self.api.db.begin() as conn:
            (token_id,) = [t.id for t in tokens.list_tokens(conn) if t.worker_queue == "gpu"]
            assert tokens.revoke(conn, token_id, time.time())


@contextmanager
def serving(db: Database, tmp_path: Path, **options: Any) -> Iterator[Server]:
    """The server (``options``: uvicorn's) and its agents, with a worker's token of gpu."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text(SETTINGS)
    settings = Settings.load(env={}, home=home, db=db.url, poll_interval=0.05)
    with serve_for_workers(settings, db, "gpu", **options) as (api, token):
        server = Server(api, token, api.base_url.removesuffix("/api/v1"))
        try:
            yield server
        finally:
            for lessor in server.lessors:
                lessor.close()


@pytest.fixture
def server(db: Database, tmp_path: Path) -> Iterator[Server]:
    with serving(db, tmp_path) as s:
        yield s


def end(job_id: int, attempt: int = 1) -> WorkerUpdate:
    return WorkerUpdate(job_id=job_id, attempt=attempt, state="succeeded", at=time.time())


def test_bad_frames_are_answered_4xx_record_nothing_and_the_channel_goes_on(
    server: Server,
) -> None:
    wf = server.api.submit("alice", template(PRINT))["id"]
    c = ChannelClient(server.root, server.token)
    (job,) = wait_for(
        "a job", lambda: c.post("/workers/lease", json={"worker": "x"}).json()["jobs"]
    )
    job_id = job["job_id"]
    held = {"worker": "x", "jobs": [{"job_id": job_id, "attempt": 1}]}

    def unchanged_and_usable() -> None:
        """Nothing recorded, and a valid call on the same channel answered at once."""
        row = server.row(job_id)
        assert (row.status, row.attempt, row.exit_code, row.result) == ("submitted", 1, None, None)
        r = c.post("/workers/renew", json=held)
        assert r.status_code == 200 and r.json()["lost"] == [], r.text

    unchanged_and_usable()
    report = json.dumps({"worker": "x", "updates": [end(job_id).model_dump()]})

    r = c.send(f"{c.seq + 1} report\n{report}".encode())  # a binary frame
    assert r.status_code == 400 and "text frames" in r.json()["error"], r.text
    unchanged_and_usable()

    r = c.send(f"report\n{report}")  # no seq: not a frame
    assert r.status_code == 400, r.text
    assert "a frame is '<seq> <op>\\n<JSON body>'" in r.json()["error"]
    unchanged_and_usable()

    r = c.post("/workers/reports", content=report)  # (answered with its seq)
    assert r.status_code == 400, r.text
    assert "'reports'" in r.json()["error"] and "lease, renew, report or release" in r.text
    unchanged_and_usable()

    for body, what in [("hello", "expected value"), (report[:-1], "EOF while parsing an object")]:
        r = c.post("/workers/report", content=body)  # not JSON: where pydantic stopped reading
        assert r.status_code == 422 and r.json()["field"] == "body", (body, r.text)
        assert f"Invalid JSON: {what} at line 1" in r.json()["error"], r.text
        unchanged_and_usable()

    nan = report.replace('"result": null', '"result": NaN')  # a number JSON cannot hold
    for body, where in [
        (nan, "body.updates.0.result"),
        (report.replace('"succeeded"', '"exploded"'), "body.updates.0.state"),
        (report.replace('"worker": "x"', '"worker": "x y"'), "body.worker"),
        (json.dumps({"worker": "x", "updates": [], "extra": 1}), "body.extra"),
    ]:
        assert body != report
        r = c.post("/workers/report", content=body)
        assert r.status_code == 422, (body, r.text)
        answer = r.json()
        assert answer["field"] == where and answer["error"].startswith(f"{where}: "), r.text
        unchanged_and_usable()

    pad = {"worker": "x", "updates": [], "pad": "x" * MAX_BODY}
    for big in (
        json.dumps(pad),
        json.dumps({**pad, "pad": "é" * (MAX_BODY // 2)}, ensure_ascii=False),
    ):
        # (answered with seq 0: not read as a call; the second has fewer characters than bytes)
        r = c.send(f"{c.seq + 1} report\n{big}")
        assert r.status_code == 413, r.text[:200]
        assert "max_request_bytes" in r.json()["error"], r.text
        unchanged_and_usable()

    not_held = end(job_id, attempt=2).model_dump()
    r = c.post("/workers/report", json={"worker": "x", "updates": [not_held]})
    assert r.status_code == 409, r.text
    assert r.json()["refused"] == [{"job_id": job_id, "attempt": 2}]
    unchanged_and_usable()
    lessor = server.lessor()
    with pytest.raises(LeaseLost) as lost:
        lessor.report(ReportIn(worker="x", updates=[end(job_id, attempt=2)]))
    assert lost.value.attempts == [(job_id, 2)]
    assert lessor.calls == {"channel": 1, "http": 0}
    unchanged_and_usable()

    r = c.post("/workers/report", content=report)  # the end of what it holds: recorded
    assert r.status_code == 200 and r.json()["recorded"] == 1, r.text
    assert server.api.wait_status(wf) == "succeeded"
    c.close()


def test_a_refused_handshake_is_raised_at_once_and_not_sent_again_as_requests(
    server: Server,
) -> None:
    address = "ws" + server.root.removeprefix("http") + API + CHANNEL
    with pytest.raises(InvalidStatus) as refused:
        connect(address, compression=None)  # no token at all
    response = refused.value.response
    route = server.api.client().post("/workers/lease", json={"worker": "w"})
    assert response.status_code == route.status_code == 401  # refused as the route refuses
    assert json.loads(response.body) == route.json() and "token" in route.json()["error"]
    assert response.headers["WWW-Authenticate"] == route.headers["WWW-Authenticate"]

    alice = server.api.tokens["alice"]
    cases: list[tuple[str, type[Exception], str]] = [
        ("", Unauthorized, "malformed Authorization header: expected 'Bearer <token>'"),
        ("orc_not-a-token", Unauthorized, "unknown or revoked token"),
        (alice, Forbidden, "is for Orchid workers: send a worker's token"),
    ]
    for token, error, message in cases:
        lessor = server.lessor(token)
        for op, body in (("lease", LeaseIn(worker="w")), ("release", ReleaseIn(worker="w"))):
            with pytest.raises(error, match=message):
                getattr(lessor, op)(body)
        assert lessor.calls == {"channel": 0, "http": 0} and not lessor.open


def test_without_websockets_on_the_server_a_worker_runs_its_jobs_over_http(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "orchid.worker.channel")
    with serving(db, tmp_path, ws="none") as server:  # uvicorn without WebSocket support
        wf = server.api.submit("alice", template(PRINT))["id"]
        # a clock that stands still: the channel is never due again, however long this takes
        lessor = server.lessor(clock=lambda: 0.0)
        woken = threading.Event()
        local = LocalExecutor(2, tmp_path / "w", wake=woken.set, kill_grace_s=1.0)
        opts = WorkerOptions(name="w", queue="gpu", poll_s=0.1, url=server.root)
        worker = Worker(lessor, local, tmp_path / "w", opts, woken=woken)
        thread = threading.Thread(target=worker.run, name="w", daemon=True)
        thread.start()
        try:
            assert server.api.wait_status(wf) == "succeeded"
        finally:
            worker.stop()
            thread.join(30)
        assert not thread.is_alive() and worker.ended == 1
        assert lessor.calls["channel"] == 0 and lessor.calls["http"] >= 3  # lease, report, release
        assert not lessor.open
    said = [r.getMessage() for r in caplog.records if r.name == "orchid.worker.channel"]
    assert len(said) == 1, said  # once, not at every call
    assert "calls go as HTTP requests" in said[0] and "HTTP 404" in said[0], said


def _break(lessor: ChannelLessor) -> None:
    """Cut the lessor's channel under it, as a network that drops the connection does."""
    conn = lessor._conn
    assert conn is not None, "the channel is not open"
    conn.socket.shutdown(socket.SHUT_RDWR)


def test_a_broken_channel_s_calls_go_as_requests_until_it_is_opened_again(
    server: Server,
) -> None:
    wf = server.api.submit("alice", template(PRINT))["id"]
    now = [0.0]
    lessor = server.lessor(clock=lambda: now[0])
    (job,) = wait_for("a job", lambda: lessor.lease(LeaseIn(worker="w")).jobs)
    held = RenewIn(worker="w", jobs=[Attempt(job_id=job.job_id, attempt=1)])
    assert lessor.renew(held).lost == []
    channel = lessor.calls["channel"]
    assert lessor.open and lessor.calls["http"] == 0

    _break(lessor)
    assert lessor.renew(held).lost == []  # sent again as a request
    assert lessor.calls == {"channel": channel, "http": 1} and not lessor.open
    now[0] += RETRY_S - 1
    assert lessor.renew(held).lost == []  # not yet tried again
    assert lessor.calls == {"channel": channel, "http": 2} and not lessor.open

    now[0] += 1
    assert lessor.report(ReportIn(worker="w", updates=[end(job.job_id)])).recorded == 1
    assert lessor.calls == {"channel": channel + 1, "http": 2} and lessor.open
    assert server.api.wait_status(wf) == "succeeded"

    _break(lessor)  # a lease whose frame could not be sent was not applied: a request
    assert lessor.lease(LeaseIn(worker="w")).jobs == []
    assert lessor.release(ReleaseIn(worker="w")).released == 0
    assert lessor.calls == {"channel": channel + 1, "http": 4} and not lessor.open


def test_a_lease_whose_answer_was_lost_is_not_sent_again(server: Server) -> None:
    """A lease sent whole on the channel and not answered (here: the server waits for a
    lock past the lessor's timeout) may have been applied: Unreachable, not a request."""
    lessor = server.lessor(timeout=3.0)  # (an answer: the first comes quickly, the lease never)
    assert lessor.renew(RenewIn(worker="w", jobs=[])).lost == [] and lessor.open
    db = server.api.db
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.begin() as conn:  # SQLite's write lock; PostgreSQL: the jobs table
            if not db.is_sqlite:
                conn.exec_driver_sql("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(60)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert locked.wait(10)
    try:
        with pytest.raises(Unreachable, match="may or may not have been applied"):
            lessor.lease(LeaseIn(worker="w"))
    finally:
        release.set()
        holder.join(10)
    assert lessor.calls == {"channel": 1, "http": 0} and not lessor.open


def test_a_token_revoked_while_its_channel_is_open_ends_the_channel(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_routes, "RECHECK_S", 0.05)
    lessor = server.lessor()
    raw = ChannelClient(server.root, server.token)
    idle = {"worker": "v", "jobs": []}
    assert lessor.renew(RenewIn(worker="w", jobs=[])).lost == [] and lessor.open
    assert raw.post("/workers/renew", json=idle).status_code == 200
    server.revoke()

    def answered() -> Answer | None:
        a = raw.post("/workers/renew", json=idle)  # served until the token is looked up again
        return a if a.status_code != 200 else None

    r = wait_for("the channel to look the token up again", answered)
    assert r is not None
    assert r.status_code == 401 and "unknown or revoked token" in r.json()["error"], r.text
    assert raw.closed() == 1008  # policy violation: the server closed it

    def refused() -> Unauthorized | None:
        try:
            lessor.renew(RenewIn(worker="w", jobs=[]))
        except Unauthorized as exc:
            return exc
        return None

    refusal = wait_for("the lessor's channel to refuse the token", refused)
    assert "unknown or revoked token" in str(refusal)
    assert lessor.calls["http"] == 0 and not lessor.open
    with pytest.raises(Unauthorized):  # a new channel is refused at its handshake
        lessor.renew(RenewIn(worker="w", jobs=[]))
    assert lessor.calls["http"] == 0


def test_a_report_waiting_for_a_lock_never_holds_up_the_server(server: Server) -> None:
    """On SQLite a small report is served on the server's event loop when the write lock
    is free at once (worker_routes.HERE_MOST); when another connection holds it (on
    PostgreSQL: the job's row), the report waits for it in a thread, as a route does,
    and the server answers everything else meanwhile. (Served on the loop with a wait,
    the report would stall the server until the lock came free: the requests below would
    time out.)"""
    wf = server.api.submit("alice", template(PRINT))["id"]
    lessor = server.lessor()
    (job,) = wait_for(
        "a job to lease", lambda: lessor.lease(LeaseIn(worker="w", max=1)).jobs, timeout=30
    )
    db = server.api.db
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with db.begin() as conn:  # SQLite's write lock: a write transaction of its own
            if not db.is_sqlite:
                lock = sa.select(job_rows.c.id).where(job_rows.c.id == job.job_id)
                conn.execute(lock.with_for_update())
            locked.set()
            release.wait(60)

    holder = threading.Thread(target=hold_the_lock, daemon=True)
    holder.start()
    assert locked.wait(10)
    before = dict(lessor.calls)
    answers: list[Any] = []

    def report() -> None:
        try:
            answers.append(lessor.report(ReportIn(worker="w", updates=[end(job.job_id)])))
        except BaseException as exc:
            answers.append(exc)

    reporter = threading.Thread(target=report, daemon=True)
    try:
        reporter.start()
        quick = server.api.client("alice", timeout=10.0)
        for _ in range(5):  # the event loop answers while the report waits for the lock
            assert quick.get("/ping").status_code == 200
            assert quick.get(f"/workflows/{wf}").status_code == 200
        other = ChannelClient(server.root, server.token)
        assert other.refusal() is None  # another worker's channel opens
        other.close()
        assert reporter.is_alive() and not answers, answers  # still waiting for the lock
    finally:
        release.set()
        holder.join(10)
    reporter.join(30)
    assert answers and answers[0].recorded == 1, answers
    assert server.row(job.job_id).status == "succeeded"
    assert lessor.calls == {"channel": before["channel"] + 1, "http": 0}


def test_a_report_carrying_big_results_is_served_in_a_thread(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report of one update is small in updates (HERE_MOST) but not in bytes when it
    carries a big result: reading and writing it on the event loop would hold every other
    call and request up as long, so it is served in a thread (``wait``), as a route is."""
    server.api.submit("alice", template(PRINT))
    lessor = server.lessor()
    (job,) = wait_for(
        "a job to lease", lambda: lessor.lease(LeaseIn(worker="w", max=1)).jobs, timeout=30
    )
    waits: list[bool] = []
    report = WorkerDesk.report

    def recording(self: WorkerDesk, *args: Any, wait: bool = True, **kw: Any) -> Any:
        waits.append(wait)
        return report(self, *args, wait=wait, **kw)

    monkeypatch.setattr(WorkerDesk, "report", recording)
    big = end(job.job_id)
    big.result = {"x": "y" * (2 * worker_routes.HERE_CHARS)}
    assert lessor.report(ReportIn(worker="w", updates=[big])).recorded == 1
    assert waits == [True] and lessor.calls["http"] == 0
    assert server.row(job.job_id).status == "succeeded"


def test_a_report_releasing_a_large_fan_out_is_not_served_on_the_event_loop(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small report whose ends release more than QUICK_CHILDREN jobs would hold the event
    loop for the whole fan-out: the desk refuses it there (NotQuick, nothing written) and
    it is served in a thread instead, children released all the same."""
    from orchid.engine import workers as desk_module

    monkeypatch.setattr(desk_module, "QUICK_CHILDREN", 2)
    waits: list[bool] = []
    real = desk_module.WorkerDesk.report

    def report(self: Any, *args: Any, wait: bool = True, **kw: Any) -> Any:
        waits.append(wait)
        return real(self, *args, wait=wait, **kw)

    monkeypatch.setattr(desk_module.WorkerDesk, "report", report)
    fan = [{"name": f"y{i}", "parents": ["x"]} for i in range(3)]
    work = {"name": "f", "executor": "gpu", "command": PRINT, "jobs": [{"name": "x"}, *fan]}
    server.api.submit("alice", {"name": "fan", "works": [work]})
    lessor = server.lessor()
    (x,) = wait_for(
        "the parent to lease", lambda: lessor.lease(LeaseIn(worker="w", max=9)).jobs, timeout=30
    )
    answer = lessor.report(ReportIn(worker="w", updates=[end(x.job_id)], want=9))
    assert answer.recorded == 1 and len(answer.jobs) == 3  # the children, leased at once
    assert waits == ([False, True] if server.api.db.is_sqlite else [True])
    assert lessor.calls["http"] == 0
