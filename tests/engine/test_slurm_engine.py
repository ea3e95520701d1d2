"""Workflows on a real single-node Slurm through the engine: a work routed to Slurm by the
settings file (its jobs one job array, a failed attempt retried by Orchid), and an agent
that dies while its jobs run in Slurm (the next one adopts them; none runs twice)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from orchid.engine.runner import make_runner
from orchid.engine.submit import submit
from orchid.settings import Settings
from orchid.store.db import Database
from tests.engine.enginekit import check_adoption, drain, jobs_of
from tests.executors.slurm_cluster import SlurmCluster, slurm_fixture  # noqa: F401 - `slurm`

pytestmark = pytest.mark.xdist_group("slurm")


def settings(db: Database, home: Path, more: str = "", **kw: object) -> Settings:
    home.mkdir(parents=True, exist_ok=True)
    (home / "settings.toml").write_text(
        f'[executors.hpc]\ntype = "slurm"\npoll_interval = 0.2\npython = "{sys.executable}"\n'
        f'partition = "long"\n{more}'
    )
    return Settings.load(env={}, db=db.url, home=home, poll_interval=0.05, **kw)


def test_a_workflow_runs_its_named_work_on_slurm(
    db: Database, tmp_path: Path, slurm: SlurmCluster
) -> None:
    shared = tmp_path / "shared"
    s = settings(db, tmp_path / "home", f'shared_dir = "{shared}"\n')
    code = (
        "import json, os, sys\n"
        "if os.environ['ORCHID_JOB_NAME'] == '2' and os.environ['ORCHID_ATTEMPT'] == '1':\n"
        "    sys.exit('first attempt fails')\n"
        "print(json.dumps([os.environ['SLURM_JOB_PARTITION'], {x} * {x}]))\n"
    )
    template = {
        "name": "on-slurm",
        "works": [
            {
                "name": "square",
                "executor": "hpc",
                "retries": 1,
                "retry_delay": 0,
                "command": ["python", "-c", code],
                "map": {"items": [{"x": i} for i in range(6)]},
            },
            {"name": "after", "after": ["square"], "command": ["python", "-c", "print(1)"]},
        ],
    }
    wf = submit(db, template, base_dir=tmp_path, now=time.time(), executors=s.executor_names)
    runner = make_runner(s, db)
    try:
        assert drain(runner, db, wf, idle_sleep=0.02).status == "succeeded"
    finally:
        for ex in runner.executors:
            ex.close()
        runner.close()
    square = [j for j in jobs_of(db, wf) if j.work_name == "square"]
    assert sorted(j.result[1] for j in square) == [i * i for i in range(6)]
    assert {j.result[0] for j in square} == {"long"}  # ran in Slurm, in the set partition
    assert sorted(j.attempt for j in square) == [1, 1, 1, 1, 1, 2]  # Orchid retried one
    assert all(j.log_uri and j.log_uri.startswith(f"{shared}/") for j in square)


def test_jobs_of_a_dead_agent_are_adopted_not_run_again(
    db: Database, tmp_path: Path, slurm: SlurmCluster
) -> None:
    s = settings(db, tmp_path / "home", lease_seconds=2.0)
    check_adoption(db, s, tmp_path, "hpc")
