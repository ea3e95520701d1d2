"""``orchid worker --slurm N`` against a real single-node Slurm: the pilots are submitted
with the real sbatch, start in the cluster, lease their queue's jobs from a real server over
HTTP and exit once idle; a workflow mixing a local work, a Slurm work and a worker-run work
succeeds (the worker-run one can only run in a pilot: no other worker exists)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchid.settings import Settings
from orchid.store.db import Database
from tests.api.conftest import Api, serve_for_workers
from tests.executors.slurm_cluster import SlurmCluster, slurm_fixture  # noqa: F401 - `slurm`
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="Debian's Slurm"),
    pytest.mark.xdist_group("slurm"),
]

SRC = str(Path(__file__).resolve().parents[2] / "src")
IDLE_EXIT_S = 3  # the pilots' --idle-exit: they end soon after the workflow


@dataclass
class Site:
    api: Api
    token: str  # a worker's token of queue pilots
    root: str  # the server's URL, without /api/v1


@pytest.fixture
def site(db: Database, tmp_path: Path, slurm: SlurmCluster) -> Iterator[Site]:
    """A server and the agents over ``db``, with a Slurm executor ``hpc`` on the test
    cluster and a worker queue ``pilots``."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text(
        f"""[executors.hpc]
type = "slurm"
poll_interval = 0.2
python = "{sys.executable}"

[executors.pilots]
type = "worker"
"""
    )
    settings = Settings.load(env={}, home=home, db=db.url, poll_interval=0.05)
    with serve_for_workers(settings, db, "pilots") as (api, token):
        yield Site(api, token, api.base_url.removesuffix("/api/v1"))


def submit_pilots(site: Site, count: int, folder: Path) -> str:
    """``orchid worker --slurm COUNT`` as a user runs it (from ``folder``, where the
    pilots' logs go); the Slurm job id it prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHID_")}
    env.update(ORCHID_TOKEN=site.token, PYTHONPATH=SRC)
    done = subprocess.run(
        [sys.executable, "-m", "orchid.cli.main", "worker", "--slurm", str(count),
         "--url", site.root, "--queue", "pilots", "--workers", "2",
         "--idle-exit", str(IDLE_EXIT_S)],
        env=env, cwd=folder, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def job_of(api: Api, wf: int, work: str) -> dict[str, Any]:
    items = api.client("alice").get(f"/workflows/{wf}/jobs").json()["items"]
    (found,) = [j for j in items if j["work"] == work]
    return dict(found)


def pilot_jobs(slurm: SlurmCluster, array: str) -> list[str]:
    """The pilots of job ``array`` Slurm still holds pending or running."""
    out = slurm.run("squeue", "-h", "-r", "-t", "PD,R,CG", "-o", "%i", check=False)
    return [i for i in out.split() if i.split("_")[0] == array]


def test_a_workflow_of_local_slurm_and_pilot_run_works_succeeds(
    site: Site, slurm: SlurmCluster, tmp_path: Path
) -> None:
    on_slurm = "import os; print(os.environ['SLURM_JOB_ID'])"
    on_pilot = "import json; print(json.dumps({'ran': 'in a pilot'}))"
    template = {
        "name": "mixed",
        "works": [
            {"name": "here", "command": ["python", "-c", "print(1)"]},
            {
                "name": "batch",
                "executor": "hpc",
                "after": ["here"],
                "command": ["python", "-c", on_slurm],
            },
            {
                "name": "pulled",
                "executor": "pilots",
                "after": ["batch"],
                "map": {"items": [{"i": i} for i in range(4)]},
                "command": ["python", "-c", on_pilot],
            },
        ],
    }
    wf = site.api.submit("alice", template)["id"]
    pilots = tmp_path / "pilots"
    pilots.mkdir()
    array = submit_pilots(site, 2, pilots)
    assert array.isdigit(), array
    assert site.api.wait_status(wf, timeout=120) == "succeeded"

    batch = job_of(site.api, wf, "batch")
    assert isinstance(batch["result"], int)  # the Slurm job's id, from inside the job
    items = site.api.client("alice").get(f"/workflows/{wf}/jobs").json()["items"]
    pulled = [j for j in items if j["work"] == "pulled"]
    assert len(pulled) == 4
    assert all(j["status"] == "succeeded" for j in pulled)
    assert all(j["result"] == {"ran": "in a pilot"} for j in pulled)

    # the pilots end by themselves once idle, and said in their logs what they ran
    wait_for("the idle pilots to exit", lambda: not pilot_jobs(slurm, array), timeout=60)
    logs = sorted(pilots.glob(f"orchid-worker-{array}_*.log"))
    assert len(logs) == 2, list(pilots.iterdir())
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    assert all("worker orchid-pilot-" in p.read_text(errors="replace") for p in logs), text
    ended = sum(
        int(line.split(": ", 1)[1].split()[0])
        for line in text.splitlines()
        if "jobs ended here; bye" in line
    )
    assert ended == 4, text
