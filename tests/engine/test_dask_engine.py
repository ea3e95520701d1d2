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
from tests.engine.enginekit import check_adoption, drain, jobs_of
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
    s = settings(db, tmp_path / "home", cluster.address, lease_seconds=2.0)
    check_adoption(db, s, tmp_path, "cluster")
