"""Orchid workers against a real server (SQLite and PostgreSQL): a workflow with one local
and one worker-run work; a worker killed mid-job (SIGKILL) whose job runs again once its
lease lapses; a late report of a lapsed lease, refused with 409 and changing nothing; a
worker's token confined to its queue's routes and its queue's jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from orchid.engine.runner import make_runner
from orchid.executors.local import LocalExecutor
from orchid.settings import Settings
from orchid.store import tokens
from orchid.store.db import Database
from orchid.store.tables import jobs as job_rows
from orchid.worker import Worker, WorkerOptions
from orchid.worker.channel import ChannelLessor
from orchid.worker.http import HttpLessor
from orchid.worker.loop import Lessor
from tests.api.conftest import Api, serve_api, serve_for_workers
from tests.api.workerchannel import ChannelClient
from tests.waiting import wait_for

SETTINGS = """
[engine]
lease_seconds = 2

[executors]
executor = "local"
workers = 2

[executors.gpu]
type = "worker"
"""
SRC = str(Path(__file__).resolve().parents[2] / "src")


@dataclass
class Site:
    api: Api
    token: str  # a worker's token of queue gpu
    root: str  # the server's URL, without /api/v1
    transport: str = "http"  # how workers talk to it: "http" requests, or the "channel"
    lessors: list[ChannelLessor] = field(default_factory=list)

    def lessor(self, token: str | None = None) -> Lessor:
        if self.transport == "http":
            return HttpLessor(self.root, token or self.token)
        lessor = ChannelLessor(self.root, token or self.token)
        self.lessors.append(lessor)
        return lessor

    def worker(self, tmp: Path, name: str) -> tuple[Worker, threading.Thread]:
        """An in-process worker of queue gpu, running."""
        woken = threading.Event()
        local = LocalExecutor(2, tmp / name, wake=woken.set, kill_grace_s=1.0)
        lessor = self.lessor()
        opts = WorkerOptions(name=name, queue="gpu", poll_s=0.1, url=self.root)
        w = Worker(lessor, local, tmp / name, opts, woken=woken)
        thread = threading.Thread(target=w.run, name=name, daemon=True)
        thread.start()
        return w, thread

    def workers(self) -> httpx.Client | ChannelClient:
        """A raw client of the worker calls, by the site's transport."""
        if self.transport == "channel":
            return ChannelClient(self.root, self.token)
        return self.api.client(headers={"Authorization": f"Bearer {self.token}"})

    def job(self, wf: int, work: str) -> dict[str, Any]:
        items = self.api.client("alice").get(f"/workflows/{wf}/jobs").json()["items"]
        (found,) = [j for j in items if j["work"] == work]
        return dict(found)

    def row(self, job_id: int) -> Any:
        with self.api.db.engine.connect() as conn:
            return conn.execute(sa.select(job_rows).where(job_rows.c.id == job_id)).one()


@pytest.fixture(params=["http", "channel"])
def site(db: Database, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    """The server and agents, and how its workers talk to it: every test runs with HTTP
    requests and with the worker channel (where no call may have gone as a request)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text(SETTINGS)
    settings = Settings.load(env={}, home=home, db=db.url, poll_interval=0.05)
    with serve_for_workers(settings, db, "gpu") as (api, token):
        site = Site(api, token, api.base_url.removesuffix("/api/v1"), request.param)
        yield site
    for lessor in site.lessors:
        assert lessor.calls["http"] == 0, lessor.calls


def template(there: list[str], name: str = "mixed") -> dict[str, Any]:
    return {
        "name": name,
        "works": [
            {"name": "here", "command": ["python", "-c", "print('on an agent')"]},
            {"name": "there", "executor": "gpu", "after": ["here"], "command": there},
        ],
    }


def test_a_workflow_of_a_local_and_a_worker_run_work_succeeds(site: Site, tmp_path: Path) -> None:
    code = "import json; print('on the worker'); print(json.dumps({'answer': 42}))"
    wf = site.api.submit("alice", template(["python", "-c", code]))["id"]
    worker, thread = site.worker(tmp_path, "w1")
    try:
        assert site.api.wait_status(wf) == "succeeded"
    finally:
        worker.stop()
        thread.join(30)
    assert worker.ended == 1  # the worker ran the gpu work's job only
    there = site.job(wf, "there")
    assert there["status"] == "succeeded" and there["result"] == {"answer": 42}
    logs = site.api.client("alice").get(f"/jobs/{there['id']}/logs")
    assert logs.status_code == 200 and "on the worker" in logs.text
    here = site.job(wf, "here")
    assert "on an agent" in site.api.client("alice").get(f"/jobs/{here['id']}/logs").text


def test_a_killed_worker_s_job_runs_again_and_each_attempt_ends_once(
    site: Site, tmp_path: Path
) -> None:
    gate, marks = tmp_path / "gate", tmp_path / "marks"
    code = (
        "import os, sys, time\n"
        "open(sys.argv[2], 'a').write(os.environ['ORCHID_ATTEMPT'] + '\\n')\n"
        "end = time.monotonic() + 60\n"
        "while not os.path.exists(sys.argv[1]) and time.monotonic() < end: time.sleep(0.02)\n"
        "print('done')\n"
    )
    wf = site.api.submit("alice", template(["python", "-c", code, str(gate), str(marks)]))["id"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHID_")}
    env.update(ORCHID_TOKEN=site.token, PYTHONPATH=SRC)
    channel = "--channel" if site.transport == "channel" else "--no-channel"
    pilot = subprocess.Popen(
        [sys.executable, "-m", "orchid.cli.main", "worker", "--url", site.root, "--queue", "gpu",
         "--name", "doomed", "--workers", "1", "--scratch", str(tmp_path), channel],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for("the worker to start the job", lambda: marks.exists() and marks.read_text())
        os.killpg(pilot.pid, signal.SIGKILL)  # the worker, not the job (its own session)
        pilot.wait(30)
        job = site.job(wf, "there")
        wait_for("the lapsed job to be ready again", lambda: site.row(job["id"]).status == "ready")
        worker, thread = site.worker(tmp_path, "w2")
        wait_for("the second attempt", lambda: marks.read_text().split() == ["1", "2"])
        gate.touch()  # both attempts end; only the second is anyone's to report
        assert site.api.wait_status(wf) == "succeeded"
        worker.stop()
        thread.join(30)
    finally:
        gate.touch()
        if pilot.poll() is None:
            os.killpg(pilot.pid, signal.SIGKILL)
    row = site.row(job["id"])
    assert (row.status, row.attempt) == ("succeeded", 2)
    assert row.max_attempts == 2  # the lost attempt cost no retry
    assert worker.ended == 1


def test_a_report_releases_its_children_and_leases_them_in_the_answer(site: Site) -> None:
    """A chain on workers waits for no agent: the report of a parent's end releases its
    child in its own transaction and, asked for jobs (``want``), hands the child over in
    its answer; nothing else was ready, so the child came from that release."""
    chain = {
        "name": "chain",
        "works": [
            {
                "name": "c",
                "executor": "gpu",
                "command": ["python", "-c", "1"],
                "jobs": [{"name": "x"}, {"name": "y", "parents": ["x"]}],
            }
        ],
    }
    wf = site.api.submit("alice", chain)["id"]
    c = site.workers()

    def leased() -> list[dict[str, Any]]:
        r = c.post("/workers/lease", json={"worker": "w", "max": 5})
        assert r.status_code == 200, r.text
        return list(r.json()["jobs"])

    (x,) = wait_for("the first job", leased)
    end = {"job_id": x["job_id"], "attempt": 1, "state": "succeeded", "at": time.time(),
           "exit_code": 0}  # fmt: skip
    r = c.post("/workers/report", json={"worker": "w", "updates": [end], "want": 5})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["recorded"] == 1 and answer["lease_s"] == 2
    (y,) = answer["jobs"]
    assert (y["workflow_id"], y["attempt"]) == (wf, 1) and y["job_id"] != x["job_id"]
    assert site.row(y["job_id"]).status == "submitted"  # this worker's now
    row = site.row(x["job_id"])
    assert row.status == "succeeded" and row.propagated  # passed on by the report itself
    assert row.log_uri is None  # it printed nothing: no empty files written
    end = {**end, "job_id": y["job_id"], "at": time.time()}
    r = c.post("/workers/report", json={"worker": "w", "updates": [end], "want": 5})
    assert r.status_code == 200 and r.json()["jobs"] == [], r.text
    assert site.api.wait_status(wf) == "succeeded"


def test_a_late_report_of_a_lapsed_lease_is_refused_and_changes_nothing(site: Site) -> None:
    wf = site.api.submit("alice", template(["python", "-c", "print(1)"]))["id"]
    c = site.workers()

    def lease(name: str) -> list[dict[str, Any]]:
        r = c.post("/workers/lease", json={"worker": name, "max": 5})
        assert r.status_code == 200, r.text
        return list(r.json()["jobs"])

    (first,) = wait_for("a job to lease", lambda: lease("a"))
    assert (first["work_name"], first["attempt"]) == ("there", 1)
    job_id = first["job_id"]
    wait_for(
        "the lease to lapse and the job to be ready", lambda: site.row(job_id).status == "ready"
    )
    (second,) = lease("b")
    assert (second["job_id"], second["attempt"]) == (job_id, 2)

    def end(attempt: int, value: int) -> dict[str, Any]:
        return {"job_id": job_id, "attempt": attempt, "state": "succeeded", "at": time.time(),
                "exit_code": 0, "result": value}  # fmt: skip

    r = c.post("/workers/report", json={"worker": "b", "updates": [end(2, 2)]})
    assert r.status_code == 200 and r.json()["recorded"] == 1, r.text

    # the agents pass the end on (the row's propagated flag) at their own pace: wait for it,
    # so that what follows compares rows only the refused reports could have changed
    def passed_on() -> Any:
        row = site.row(job_id)
        return row if row.propagated else None

    before = wait_for("the end to be passed on", passed_on)
    late = c.post("/workers/report", json={"worker": "a", "updates": [end(1, 1)]})
    assert late.status_code == 409, late.text
    assert late.json()["refused"] == [{"job_id": job_id, "attempt": 1}]
    again = c.post("/workers/report", json={"worker": "b", "updates": [end(2, 3)]})
    assert again.status_code == 409  # recorded once: a second end of attempt 2 is refused
    assert site.row(job_id) == before
    assert (before.status, before.attempt, before.result) == ("succeeded", 2, 2)
    renewed = c.post(
        "/workers/renew", json={"worker": "a", "jobs": [{"job_id": job_id, "attempt": 1}]}
    )
    assert renewed.status_code == 200
    assert renewed.json()["lost"] == [{"job_id": job_id, "attempt": 1}]
    assert site.api.wait_status(wf) == "succeeded"


def test_a_worker_token_leases_its_queue_s_jobs_and_nothing_else(site: Site) -> None:
    wf = site.api.submit("alice", template(["python", "-c", "print(1)"]))["id"]
    c = site.workers()
    if isinstance(c, ChannelClient):  # the channel takes the worker calls and nothing else
        r = c.post("/workflows", json={"template": template(["true"])})
        assert r.status_code == 400 and "lease, renew, report or release" in r.text, r.text
        for user in ("alice", "root"):
            refused = ChannelClient(site.root, site.api.tokens[user]).refusal()
            assert refused is not None and refused.status_code == 403, user
            assert "worker's token" in refused.json()["error"]
        refused = ChannelClient(site.root, "orc_not-a-token").refusal()
        assert refused is not None and refused.status_code == 401, refused.text
    else:
        for method, path in [("GET", "/workflows"), ("GET", "/whoami"),
                             ("GET", f"/workflows/{wf}"), ("GET", "/health"), ("GET", "/cache")]:  # fmt: skip
            r = c.request(method, path)
            assert r.status_code == 403 and "worker" in r.json()["error"], (path, r.text)
        r = c.post("/workflows", json={"template": template(["true"])})
        assert r.status_code == 403
        for user in ("alice", "root"):
            r = site.api.client(user).post("/workers/lease", json={"worker": "x"})
            assert r.status_code == 403 and "worker's token" in r.json()["error"]
    r = c.post("/workers/lease", json={"worker": "x", "queue": "cpu"})
    assert r.status_code == 422 and "gpu" in r.json()["error"]
    r = c.post("/workers/lease", json={"worker": "bad name!"})
    assert r.status_code == 422
    # the local work's job ran on the agents; only the gpu work's job is ever leased
    leased = wait_for(
        "a job", lambda: c.post("/workers/lease", json={"worker": "x", "max": 9}).json()["jobs"]
    )
    assert [j["work_name"] for j in leased] == ["there"]
    assert site.job(wf, "here")["status"] == "succeeded"
    released = c.post("/workers/release", json={"worker": "x"})
    assert released.json() == {"released": 1}
    assert site.row(leased[0]["job_id"]).status in ("ready", "submitted")


def test_an_abort_stops_the_worker_s_job(site: Site, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    wf = site.api.submit("alice", template(["python", "-c", code, str(pid_file)]))["id"]
    worker, thread = site.worker(tmp_path, "w1")
    try:
        wait_for("the job to run", lambda: pid_file.exists() and pid_file.read_text())
        r = site.api.client("alice").post(f"/workflows/{wf}/abort")
        assert r.status_code == 202, r.text
        assert site.api.wait_status(wf) == "cancelled"

        def stopped() -> bool:
            try:
                os.kill(int(pid_file.read_text()), 0)
            except ProcessLookupError:
                return True
            return False

        wait_for("the worker to stop the job", stopped)
        wait_for("the worker to let it go", lambda: worker.held == 0)
    finally:
        worker.stop()
        thread.join(30)
    assert worker.ended == 0  # its end was the server's to record: cancelled
    assert site.job(wf, "there")["status"] == "cancelled"


def test_bad_reports_are_refused_with_4xx_and_record_nothing(site: Site) -> None:
    site.api.submit("alice", template(["python", "-c", "print(1)"]))
    c = site.workers()
    (job,) = wait_for(
        "a job", lambda: c.post("/workers/lease", json={"worker": "x"}).json()["jobs"]
    )
    ok = {"job_id": job["job_id"], "attempt": 1, "state": "succeeded", "at": time.time()}
    bad = [
        {**ok, "stdout": "not base64!"},
        {**ok, "job_id": 2**63},
        {**ok, "state": "exploded"},
        {**ok, "extra": 1},
    ]
    for update in bad:
        r = c.post("/workers/report", json={"worker": "x", "updates": [update]})
        assert r.status_code == 422, (update, r.text)
    update = f'{{"job_id": {job["job_id"]}, "attempt": 1, "state": "succeeded", "at": 1.0'
    nan = f'{{"worker": "x", "updates": [{update}, "result": NaN}}]}}'  # JSON has no NaN
    r = c.post("/workers/report", content=nan, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "NaN" in r.text, r.text
    assert site.row(job["job_id"]).status == "submitted"


def test_a_revoked_worker_token_stops_the_worker_and_its_jobs(site: Site, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    site.api.submit("alice", template(["python", "-c", code, str(pid_file)]))
    woken = threading.Event()
    local = LocalExecutor(1, tmp_path / "w", wake=woken.set, kill_grace_s=1.0)
    opts = WorkerOptions(name="w", queue="gpu", poll_s=0.1)
    worker = Worker(site.lessor(), local, tmp_path / "w", opts, woken=woken)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for("the job to run", lambda: pid_file.exists() and pid_file.read_text())
    with site.api.db.begin() as conn:
        (token_id,) = [t.id for t in tokens.list_tokens(conn) if t.worker_queue == "gpu"]
        assert tokens.revoke(conn, token_id, time.time())
    thread.join(30)
    assert not thread.is_alive()
    assert failed and "revoked" in str(failed[0])
    try:
        os.kill(int(pid_file.read_text()), 0)
    except ProcessLookupError:
        pass
    else:
        pytest.fail("the job still runs after its worker stopped")


WORK_CHAIN = {
    "name": "chain",
    "works": [
        {"name": "a", "executor": "gpu", "command": ["python", "-c", "print('a')"]},
        {"name": "b", "executor": "gpu", "after": ["a"], "command": ["python", "-c", "1"]},
    ],
}
# a worker's job whose job-level child runs on the agents' own (local) executor
TO_THE_AGENTS = {
    "name": "handover",
    "works": [
        {"name": "a", "executor": "gpu", "command": ["python", "-c", "1"], "jobs": [{"name": "x"}]},
        {
            "name": "b",
            "command": ["python", "-c", "1"],
            "jobs": [{"name": "y", "parents": ["a/x"]}],
        },
    ],
}


@pytest.mark.parametrize("template", [WORK_CHAIN, TO_THE_AGENTS], ids=["works", "jobs"])
def test_on_postgresql_a_workers_reports_wake_the_agents(
    db: Database, tmp_path: Path, template: dict[str, Any]
) -> None:
    """Agents that poll only every 30 s still run, at once, a two-work chain of worker jobs
    (the report of a's end ends work a: the agents start b) and a worker's job whose child
    is theirs (the report releases it: the agents claim it): each report notifies them
    (LISTEN/NOTIFY) of what they must act on, as an end from their own executor would."""
    if db.is_sqlite:
        pytest.skip("the default bus of SQLite reaches one process: agents poll for the ends")
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text(SETTINGS)
    settings = Settings.load(env={}, home=home, db=db.url, poll_interval=30.0)
    with serve_api(settings, db) as api:
        with db.begin() as conn:
            _, token = tokens.create(
                conn, user="pilot", admin=False, groups=[], now=time.time(), worker_queue="gpu"
            )
        wf = api.submit("alice", template)["id"]
        runner = make_runner(settings, db)  # its first round starts the workflow at once
        stop = threading.Event()
        agents = threading.Thread(
            target=runner.run, kwargs={"until": stop.is_set}, name="orchid-agents", daemon=True
        )
        agents.start()
        site = Site(api, token, api.base_url.removesuffix("/api/v1"))
        worker, thread = site.worker(tmp_path, "w1")
        try:
            # well before the agents' next poll: only a notification can have woken them
            assert api.wait_status(wf, timeout=15.0) == "succeeded"
        finally:
            worker.stop()
            thread.join(30)
            stop.set()
            runner.stop()
            agents.join(15)
            runner.close()
