"""The PanDA executor against a real PanDA: panda-server 1.0.4 and JEDI, with a stand-in pilot.

The server, JEDI (its message-driven agents on the local RabbitMQ) and the adder's work
are the real thing (tests/executors/panda_server.py); only the pilot is a stand-in
(tests/executors/panda_pilot.py) that runs each job's real ``transPath`` payload. The
contract suite runs here, then Orchid workflows through the engine: a Rubin-shaped DAG
with job-level parents (each payload checks that its parents' outputs exist), a map, a
work whose jobs exist only once its upstream work ended, and a failed parent.

One server for all of them and for tests/idds' PanDA test (a session fixture of
tests/executors/panda_fixtures.py, one xdist group).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchid.executors.base import Executor, Resources, WorkPlan
from orchid.executors.panda import PandaExecutor, PandaOptions
from orchid.notify.config import StompBroker
from orchid.notify.receiver import StatusReceiver
from orchid.notify.stomp import StompSender
from orchid.store import commands
from orchid.store.db import Database
from tests.engine.enginekit import engine_factory, jobs_of, works_of
from tests.executors import panda_server
from tests.executors.contract import (
    ExecutorContract,
    Reopen,
    finals,
    marked_gate_job,
    python,
    spec,
    wait_for,
    wait_for_state,
)
from tests.executors.panda_pilot import StandInPilot

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups"),
    pytest.mark.xdist_group("panda"),  # panda-client keeps its server in process globals
    pytest.mark.postgres,
]


@pytest.fixture(scope="session")
def server(real_panda: panda_server.PandaServer) -> panda_server.PandaServer:
    """The session's one PanDA (tests/executors/panda_fixtures.py)."""
    return real_panda


@pytest.fixture(scope="session")
def pilot(real_panda_pilot: StandInPilot) -> StandInPilot:
    return real_panda_pilot


def options(server: panda_server.PandaServer, **kw: object) -> PandaOptions:
    base = {
        "url": server.url,
        "vo": panda_server.VO,
        "cloud": panda_server.CLOUD,
        "site": panda_server.SITE,
        "prod_source_label": panda_server.PROD_SOURCE_LABEL,
        "auth": "oidc",
        "token_env": "ORCHID_TEST_PANDA_TOKEN",
        "python": sys.executable,
        "poll_interval": 0.5,
        "monitor_url": "https://bigpanda.example.org",
        "release_destination": server.destination,
    }
    return PandaOptions.model_validate({**base, **kw})


def make(
    server: panda_server.PandaServer, logs: Path, namespace: str, **kw: object
) -> PandaExecutor:
    os.environ["ORCHID_TEST_PANDA_TOKEN"] = "no-auth-here"  # the server checks no token
    sender = StompSender(StompBroker(user="guest", password="guest"), server.destination)
    return PandaExecutor(logs, options(server, **kw), namespace=namespace, releases=sender)


def fresh_namespace() -> str:
    return "t" + uuid.uuid4().hex[:10]


class TestRealPandaContract(ExecutorContract):
    local_logs = False  # logs stay in PanDA: log_uri links the monitor
    requested = Resources(
        cores=2, memory_mb=1500, gpus=0, walltime_s=600.0, queue=panda_server.SITE
    )

    @pytest.fixture
    def executor(
        self, server: panda_server.PandaServer, pilot: StandInPilot, tmp_path: Path
    ) -> Iterator[PandaExecutor]:
        self._server = server
        self._ns = fresh_namespace()
        ex = make(server, tmp_path / "logs", self._ns)
        yield ex
        ex.close()

    @pytest.fixture
    def reopen(self, server: panda_server.PandaServer, tmp_path: Path) -> Iterator[Reopen]:
        made: list[PandaExecutor] = []

        def again(old: Executor) -> Executor:
            old.close()
            made.append(make(server, tmp_path / "logs", self._ns))
            return made[-1]

        yield again
        for ex in made:
            ex.close()

    def observed_resources(self, executor: Executor, key: str) -> Resources | None:
        _, job_id, attempt = key.split("-")
        name = f"{self._ns}.1.work.{job_id}.{attempt}"
        (row,) = self._server.sql(
            "SELECT corecount, ramcount, walltime, site FROM doma_panda.jedi_tasks "
            "WHERE taskname = :name",
            name=name,
        )
        return Resources(
            cores=int(row.corecount),
            memory_mb=int(row.ramcount),
            gpus=0,
            walltime_s=float(row.walltime),
            queue=str(row.site),
        )


# --- Orchid workflows through the real PanDA -------------------------------------------

CHECK_PARENTS = """\
import json, os, sys
out = sys.argv[1]
me, parents = sys.argv[2], [p for p in sys.argv[3].split(",") if p]
missing = [p for p in parents if not os.path.exists(os.path.join(out, p))]
if missing:
    print("missing parent outputs:", missing, file=sys.stderr)
    sys.exit(5)
with open(os.path.join(out, me), "w") as f:
    f.write(me)
print(json.dumps({"job": me, "parents": len(parents)}))
"""


def rubin_jobs(visits: int, detectors: int, patches: int) -> dict[str, list[dict[str, Any]]]:
    """The jobs of examples/rubin_dag's first works and its coadd, with job-level parents."""
    isr, calib, coadd = [], [], []
    for v in range(visits):
        for d in range(detectors):
            key = f"v{v}d{d}"
            isr.append({"name": key, "args": {"me": f"isr-{key}", "parents": ""}})
            calib.append(
                {
                    "name": key,
                    "args": {"me": f"calibrate-{key}", "parents": f"isr-{key}"},
                    "parents": [f"isr/{key}"],
                }
            )
    for p in range(patches):
        overlap = [(p + k) % detectors for k in range(3)]
        keys = [f"v{v}d{d}" for v in range(visits) for d in overlap]
        coadd.append(
            {
                "name": f"p{p}",
                "args": {"me": f"coadd-p{p}", "parents": ",".join(f"calibrate-{k}" for k in keys)},
                "parents": [f"calibrate/{k}" for k in keys],
            }
        )
    return {"isr": isr, "calibrate": calib, "coadd": coadd}


@pytest.fixture
def engine(
    server: panda_server.PandaServer, pilot: StandInPilot, tmp_path: Path
) -> Iterator[Callable[[], Any]]:
    closers: list[Callable[[], None]] = []
    db = Database(f"sqlite:///{tmp_path / 'orchid.db'}")
    db.upgrade()
    factory = engine_factory(db, tmp_path / "home", closers)
    made: list[PandaExecutor] = []

    def make_engine() -> Any:
        ex = make(server, tmp_path / "logs", fresh_namespace(), poll_interval=0.3)
        made.append(ex)
        return factory(ex, poll_interval=0.05)

    yield make_engine
    for close in reversed(closers):
        close()
    db.dispose()


def test_a_rubin_shaped_dag_runs_through_jedi(
    engine: Callable[[], Any], server: panda_server.PandaServer, tmp_path: Path
) -> None:
    out = tmp_path / "outputs"
    out.mkdir()
    jobs = rubin_jobs(visits=10, detectors=15, patches=12)  # 150 + 150 + 12 jobs
    command = [sys.executable, "-c", CHECK_PARENTS, str(out), "{me}", "{parents}"]
    template = {
        "name": "rubin-on-panda",
        "works": [{"name": w, "command": command, "jobs": js} for w, js in jobs.items()],
    }
    eng = engine()
    wf_id, wf = eng.run(template, idle_sleep=0.02, deadline_s=600.0, max_rounds=10**7)
    assert wf.status == "succeeded", [
        (j.work_name, j.name, j.error) for j in jobs_of(eng.db, wf_id) if j.error
    ][:5]
    done = jobs_of(eng.db, wf_id)
    assert len(done) == 312 and {j.status for j in done} == {"succeeded"}
    assert len(list(out.iterdir())) == 312
    coadds = [j.result for j in done if j.work_name == "coadd"]
    assert {r["parents"] for r in coadds} == {30}
    # one JEDI task per work, each job a PanDA job of it, every one held and released
    rows = server.sql(
        "SELECT t.taskname, t.status, count(j.pandaid) AS n FROM doma_panda.jedi_tasks t "
        "JOIN doma_panda.jobsarchived4 j ON j.jeditaskid = t.jeditaskid "
        "WHERE t.taskname LIKE :pattern AND j.jobstatus = 'finished' GROUP BY 1, 2",
        pattern=f"%.{wf_id}.%",
    )
    by_work = {r.taskname.split(".")[2]: int(r.n) for r in rows if eng.executor._ns in r.taskname}
    assert by_work == {"isr": 150, "calibrate": 150, "coadd": 12}


def test_a_map_and_a_work_made_when_its_upstream_ends(engine: Callable[[], Any]) -> None:
    items = "import json; print(json.dumps([{'x': i} for i in range({n})]))"
    template = {
        "name": "dynamic-on-panda",
        "works": [
            {
                "name": "square",
                "command": ["python", "-c", "print({x} * {x})"],
                "map": {"items": [{"x": i} for i in range(5)]},
            },
            {"name": "plan", "command": ["python", "-c", items.replace("{n}", "4")]},
            {
                "name": "fan",
                "after": ["plan"],
                "command": ["python", "-c", "print({x} + 100)"],
                "map": {"items": "${works.plan.outputs}"},
            },
        ],
    }
    eng = engine()
    wf_id, wf = eng.run(template, idle_sleep=0.02, deadline_s=300.0, max_rounds=10**7)
    assert wf.status == "succeeded", [j.error for j in jobs_of(eng.db, wf_id) if j.error]
    results = {
        w: sorted(j.result for j in jobs_of(eng.db, wf_id) if j.work_name == w)
        for w in ("square", "fan")
    }
    assert results == {"square": [0, 1, 4, 9, 16], "fan": [100, 101, 102, 103]}


def test_a_failed_parent_skips_its_children_and_their_files_are_missing(
    engine: Callable[[], Any], server: panda_server.PandaServer
) -> None:
    fail_if = "import sys; sys.exit(7 if '{name}' == 'bad' else 0)"
    template = {
        "name": "failure-on-panda",
        "works": [
            {
                "name": "a",
                "command": ["python", "-c", fail_if],
                "jobs": [
                    {"name": "good", "args": {"name": "good"}},
                    {"name": "bad", "args": {"name": "bad"}},
                ],
                "retries": 1,
                "retry_delay": 0.1,
                "on_failure": "continue",
            },
            {
                "name": "b",
                "command": ["python", "-c", "print(1)"],
                "jobs": [
                    {"name": "after-good", "parents": ["a/good"]},
                    {"name": "after-bad", "parents": ["a/bad"]},
                ],
            },
        ],
    }
    eng = engine()
    wf_id, _wf = eng.run(template, idle_sleep=0.02, deadline_s=300.0, max_rounds=10**7)
    states = {(j.work_name, j.name): (j.status, j.attempt) for j in jobs_of(eng.db, wf_id)}
    assert states[("a", "bad")] == ("failed", 2)  # Orchid retried it once: PanDA ran it twice
    assert states[("b", "after-bad")][0] == "skipped"
    assert states[("b", "after-good")][0] == "succeeded"
    assert {w.name: w.status for w in works_of(eng.db, wf_id)}["b"] != "running"
    bad = next(j for j in jobs_of(eng.db, wf_id) if j.name == "bad")
    assert bad.error and "exit code 7" in bad.error
    # in PanDA: attempts 1 and 2 of a/bad ran and failed; a/good's unneeded attempt 2 and
    # b/after-bad were reported missing once their works ended, so JEDI had nothing left
    # to wait for and moved both tasks on to post-processing (prepared, then done/finished)
    ns = eng.executor._ns
    ids = {j.name: j.id for j in jobs_of(eng.db, wf_id)}
    want = {
        f"j{ids['good']}.1": "finished",
        f"j{ids['good']}.2": "missing",
        f"j{ids['after-good']}.1": "finished",
        f"j{ids['after-bad']}.1": "missing",
    }

    def look() -> tuple[dict[str, str], set[str]]:
        files = server.sql(
            "SELECT c.lfn, c.status FROM doma_panda.jedi_dataset_contents c "
            "JOIN doma_panda.jedi_tasks t ON t.jeditaskid = c.jeditaskid "
            "WHERE t.taskname LIKE :p AND c.type = 'pseudo_input'",
            p=f"{ns}.{wf_id}.%",
        )
        tasks = server.sql(
            "SELECT status FROM doma_panda.jedi_tasks WHERE taskname LIKE :p", p=f"{ns}.{wf_id}.%"
        )
        return {str(r.lfn).split(":")[-1]: str(r.status) for r in files}, {
            str(r.status) for r in tasks
        }

    end = time.monotonic() + 120
    while time.monotonic() < end:  # the carrier says works ended on its lease tick
        eng.runner.run_once()
        files, tasks = look()
        if all(files.get(f) == s for f, s in want.items()):
            break
        time.sleep(0.2)
    files, tasks = look()
    assert {f: files.get(f) for f in want} == want
    # JEDI then post-processes both tasks (prepared → done/finished): its contents feeder
    # notices the missing files within confeeder.checkInterval; not waited for here
    assert "broken" not in tasks, tasks
    ran = server.sql(
        "SELECT count(*) AS n FROM doma_panda.filestable4 f "
        "JOIN doma_panda.jedi_tasks t ON t.jeditaskid = f.jeditaskid "
        "WHERE t.taskname LIKE :p AND f.lfn LIKE :lfn",
        p=f"{ns}.{wf_id}.%",
        lfn=f"%:j{ids['after-bad']}.1",
    )
    assert ran[0].n == 0  # after-bad never became a PanDA job


def test_status_messages_replace_polling(
    server: panda_server.PandaServer, pilot: StandInPilot, tmp_path: Path
) -> None:
    """The server's job status messages (and JEDI's task status messages) through the
    local RabbitMQ: the executor polls only every 5 minutes, so the jobs can only end in
    time because the messages told it which jobs to look at."""
    broker = StompBroker(user="guest", password="guest")
    receiver = StatusReceiver(broker, server.status_destination)
    os.environ["ORCHID_TEST_PANDA_TOKEN"] = "no-auth-here"
    sender = StompSender(broker, server.destination)
    opts = options(server, poll_interval=300.0)  # the fallback only: beyond the deadline
    ex = PandaExecutor(
        tmp_path / "logs",
        opts,
        namespace=fresh_namespace(),
        status_messages=receiver,
        releases=sender,
    )
    try:
        jobs = [spec(i, python(f"print({i} * 10)")) for i in range(1, 6)]
        ex.submit(jobs)
        done = finals(wait_for(ex, len(jobs), timeout=120))
    finally:
        ex.close()
    assert {u.result for u in done.values()} == {10, 20, 30, 40, 50}
    assert receiver.received >= len(jobs)  # at least the end of each job


def test_a_planned_work_survives_a_restart_of_its_agent(
    server: panda_server.PandaServer, pilot: StandInPilot, tmp_path: Path
) -> None:
    """The held model across a restart: the new executor finds the work's task by name
    and each running attempt's job by its file; nothing runs twice, the rest is released."""
    gate, marks = tmp_path / "gate", tmp_path / "marks"
    ns = fresh_namespace()
    plan = WorkPlan(1, 7, "work", "command", Resources(), ((1, 1), (2, 1), (3, 1)))
    jobs = [spec(i, marked_gate_job(gate, marks)) for i in (1, 2)]
    first = make(server, tmp_path / "logs", ns)
    try:
        first.plan([plan])
        first.submit(jobs)
        updates: list[Any] = []
        for job in jobs:
            wait_for_state(first, job.key, "running", updates, timeout=120)
    finally:
        first.close()  # the agent dies: its jobs go on in PanDA
    gate.touch()
    again = make(server, tmp_path / "logs", ns)
    try:
        again.plan([plan])  # the carrier of the next agent plans the work again
        again.submit([dataclasses.replace(j, adopted=True) for j in jobs])
        again.submit([spec(3, python("print(3)"))])  # and releases what was still held
        done = finals(wait_for(again, 3, timeout=120))
    finally:
        again.close()
    assert {u.state for u in done.values()} == {"succeeded"}
    assert sorted(marks.read_text().split()) == sorted(j.key for j in jobs), "a job ran twice"
    (task,) = server.sql(
        "SELECT count(*) AS n FROM doma_panda.jedi_tasks WHERE taskname = :n", n=f"{ns}.1.work.7"
    )
    assert task.n == 1


def test_an_abort_kills_the_jobs_and_the_task_in_panda(
    engine: Callable[[], Any], server: panda_server.PandaServer, tmp_path: Path
) -> None:
    """Orchid's abort, through the carrier: killJobs for the running attempts (the pilot
    hears tobekilled), then killTask for the work's task once the work has ended."""
    marks = tmp_path / "marks"
    code = (
        "import os, sys, time\n"
        "open(sys.argv[1], 'a').write(os.environ['ORCHID_JOB_KEY'] + '\\n')\n"
        "time.sleep(120)\n"
    )
    template = {
        "name": "abort-on-panda",
        "works": [
            {
                "name": "long",
                "command": ["python", "-c", code, str(marks)],
                "jobs": [{"name": str(i)} for i in range(3)],
            }
        ],
    }
    eng = engine()
    wf_id = eng.submit(template)
    eng.run_until(
        wf_id,
        lambda: marks.exists() and len(marks.read_text().split()) == 3,
        idle_sleep=0.02,
        deadline_s=120.0,
        max_rounds=10**7,
    )
    with eng.db.begin() as conn:
        commands.add(conn, wf_id, "abort", time.time())
    wf = eng.drain(wf_id, idle_sleep=0.02, deadline_s=120.0, max_rounds=10**7)
    assert wf.status == "cancelled"
    ns = eng.executor._ns

    def panda_states() -> tuple[set[str], set[str]]:
        jobs = server.sql(
            "SELECT j.jobstatus FROM doma_panda.jobsarchived4 j JOIN doma_panda.jedi_tasks t "
            "ON t.jeditaskid = j.jeditaskid WHERE t.taskname LIKE :p "
            "UNION ALL SELECT j.jobstatus FROM doma_panda.jobsactive4 j "
            "JOIN doma_panda.jedi_tasks t ON t.jeditaskid = j.jeditaskid WHERE t.taskname LIKE :p",
            p=f"{ns}.{wf_id}.%",
        )
        tasks = server.sql(
            "SELECT status FROM doma_panda.jedi_tasks WHERE taskname LIKE :p", p=f"{ns}.{wf_id}.%"
        )
        return {str(r.jobstatus) for r in jobs}, {str(r.status) for r in tasks}

    end = time.monotonic() + 90
    while time.monotonic() < end:  # the pilot's next heartbeat, the carrier's next tick
        eng.runner.run_once()
        jobs, tasks = panda_states()
        if jobs == {"cancelled"} and tasks & {"aborting", "aborted", "toabort"}:
            break
        time.sleep(0.2)
    assert panda_states()[0] == {"cancelled"}
    assert panda_states()[1] & {"aborting", "aborted", "toabort"}
