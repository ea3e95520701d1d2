"""Workflows on a real Dask cluster through the engine: routing by settings, and an agent
that dies while its jobs run on the cluster (the next one adopts them; none runs twice)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchid.engine.runner import make_runner
from orchid.engine.submit import submit
from orchid.settings import Settings
from orchid.store.db import Database
from tests.engine.enginekit import drain, jobs_of, run_until
from tests.executors.daskcluster import DaskCluster, cluster_fixture  # noqa: F401 - `cluster`

pytestmark = pytest.mark.xdist_group("dask")


def settings(db: Database, home: Path, address: str, **kw: object) -> Settings:
    home.mkdir(parents=True, exist_ok=True)
    (home / "settings.toml").write_text(
        f'[executors.cluster]\ntype = "dask"\naddress = "{address}"\n'
    )
    return Settings.load(env={}, db=db.url, home=home, poll_interval=0.05, **kw)


def test_a_workflow_runs_its_named_work_on_the_cluster(
    db: Database, tmp_path: Path, cluster: DaskCluster
) -> None:
    s = settings(db, tmp_path / "home", cluster.address)
    code = "import json, os; print(json.dumps([os.environ.get('ORCHID_NODE', 'here'), {x}]))"
    template = {
        "name": "on-dask",
        "works": [
            {
                "name": "square",
                "executor": "cluster",
                "command": ["python", "-c", code.replace("{x}", "{x} * {x}")],
                "map": {"items": [{"x": i} for i in range(6)]},
            },
            {"name": "after", "after": ["square"], "command": ["python", "-c", "print(1)"]},
        ],
    }
    wf = submit(db, template, base_dir=tmp_path, now=time.time(), executors=s.executor_names)
    runner = make_runner(s, db)
    ex = runner.executor
    try:
        assert drain(runner, db, wf, idle_sleep=0.02).status == "succeeded"
    finally:
        ex.close()
        runner.close()
    results = sorted(j.result[1] for j in jobs_of(db, wf) if j.work_name == "square")
    nodes = {j.result[0].split()[0] for j in jobs_of(db, wf) if j.work_name == "square"}
    assert results == [i * i for i in range(6)]
    assert nodes <= {"w-a", "w-gpu"}  # ran on the workers, and their logs came back
    assert all(j.log_uri for j in jobs_of(db, wf))


def test_jobs_of_a_dead_agent_are_adopted_not_run_again(
    db: Database, tmp_path: Path, cluster: DaskCluster
) -> None:
    marks, gate = tmp_path / "marks", tmp_path / "gate"
    code = (
        "import os, sys, time\n"
        "open(sys.argv[1], 'a').write(os.environ['ORCHID_JOB_KEY'] + '\\n')\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.02)\n"
        "print(int(os.environ['ORCHID_JOB_NAME']) + 100)\n"
    )
    template = {
        "name": "adopted",
        "defaults": {"executor": "cluster"},
        "works": [
            {
                "name": "w",
                "command": ["python", "-c", code, str(marks), str(gate)],
                "map": {"items": [{}] * 3},
            }
        ],
    }
    s = settings(db, tmp_path / "home", cluster.address, lease_seconds=2.0)
    wf = submit(db, template, base_dir=tmp_path, now=time.time(), executors=s.executor_names)
    first = make_runner(s, db)
    ex1 = first.executor
    run_until(
        first,
        db,
        wf,
        lambda: marks.exists() and len(marks.read_text().split()) == 3,
        what="three jobs running on the cluster",
        idle_sleep=0.02,
    )
    ex1.close()  # the agent dies: its Dask client goes, its leases stay until they expire
    for runner_ex in first.executors:
        runner_ex.close()
    gate.touch()
    second = make_runner(s, db)
    ex2 = second.executor
    try:
        assert drain(second, db, wf, idle_sleep=0.05).status == "succeeded"
    finally:
        ex2.close()
        second.close()
    ran = marks.read_text().split()
    assert len(ran) == 3 and len(set(ran)) == 3, f"a job ran twice: {ran}"
    jobs = jobs_of(db, wf)
    assert sorted(j.result for j in jobs) == [100, 101, 102]
    assert {j.attempt for j in jobs} == {1}  # the same attempts, adopted
