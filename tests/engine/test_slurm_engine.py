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
from tests.engine.enginekit import drain, jobs_of, run_until
from tests.executors.slurm_cluster import SlurmCluster, slurm_fixture  # noqa: F401 - `slurm`

pytestmark = pytest.mark.xdist_group("slurm")


def settings(db: Database, home: Path, **kw: object) -> Settings:
    home.mkdir(parents=True, exist_ok=True)
    (home / "settings.toml").write_text(
        f'[executors.hpc]\ntype = "slurm"\npoll_interval = 0.2\npython = "{sys.executable}"\n'
        'partition = "long"\n'
    )
    return Settings.load(env={}, db=db.url, home=home, poll_interval=0.05, **kw)


def test_a_workflow_runs_its_named_work_on_slurm(
    db: Database, tmp_path: Path, slurm: SlurmCluster
) -> None:
    s = settings(db, tmp_path / "home")
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
    assert all(j.log_uri for j in jobs_of(db, wf))


def test_jobs_of_a_dead_agent_are_adopted_not_run_again(
    db: Database, tmp_path: Path, slurm: SlurmCluster
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
        "defaults": {"executor": "hpc"},
        "works": [
            {
                "name": "w",
                "command": ["python", "-c", code, str(marks), str(gate)],
                "map": {"items": [{}] * 3},
            }
        ],
    }
    s = settings(db, tmp_path / "home", lease_seconds=2.0)
    wf = submit(db, template, base_dir=tmp_path, now=time.time(), executors=s.executor_names)
    first = make_runner(s, db)
    run_until(
        first,
        db,
        wf,
        lambda: marks.exists() and len(marks.read_text().split()) == 3,
        what="three jobs running in Slurm",
        idle_sleep=0.02,
    )
    for ex in first.executors:  # the agent dies: its jobs stay in Slurm, its leases expire
        ex.close()
    gate.touch()
    second = make_runner(s, db)
    try:
        assert drain(second, db, wf, idle_sleep=0.05).status == "succeeded"
    finally:
        for ex in second.executors:
            ex.close()
        second.close()
    ran = marks.read_text().split()
    assert len(ran) == 3 and len(set(ran)) == 3, f"a job ran twice: {ran}"
    jobs = jobs_of(db, wf)
    assert sorted(j.result for j in jobs) == [100, 101, 102]
    assert {j.attempt for j in jobs} == {1}  # the same attempts, adopted
