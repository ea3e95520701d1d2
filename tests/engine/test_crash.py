"""Crash safety: SIGKILL the agent process mid-workflow; a restarted agent finishes it.

The agents run as real ``orchid agents`` processes against the test database
(SQLite file or PostgreSQL). Each job appends its name to a file after a short
sleep, so the file shows which jobs ran to completion.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchid.engine.submit import submit
from orchid.store.db import Database
from orchid.store.tables import jobs, workflows
from tests.waiting import wait_for

pytestmark = pytest.mark.slow
LAYERS, WIDTH = 4, 30


def template(marks: Path) -> dict[str, Any]:
    """A layered job DAG: each job of layer k waits for two jobs of layer k-1."""
    cmd = f"sleep 0.05; echo {{name}} >> {marks}; echo '{{\"layer\": {{layer}}}}'"
    listed = []
    for layer in range(LAYERS):
        for i in range(WIDTH):
            parents = [] if layer == 0 else [f"j{layer - 1}-{i}", f"j{layer - 1}-{(i + 1) % WIDTH}"]
            name = f"j{layer}-{i}"
            listed.append(
                {"name": name, "args": {"name": name, "layer": layer}, "parents": parents}
            )
    return {
        "name": "crash",
        "works": [{"name": "dag", "command": ["sh", "-c", cmd], "jobs": listed}],
    }


def start_agent(url: str, home: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ORCHID_HOME": str(home),
        "ORCHID_LEASE_SECONDS": "2",
        "ORCHID_POLL_INTERVAL": "0.1",
        "ORCHID_WORKERS": "2",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "orchid.cli.main", "agents", "--db", url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def succeeded(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(jobs).where(jobs.c.status == "succeeded")
            ).scalar_one()
        )


def workflow_status(db: Database, wf: int) -> str:
    with db.engine.connect() as conn:
        return str(
            conn.execute(sa.select(workflows.c.status).where(workflows.c.id == wf)).scalar_one()
        )


def test_killed_agent_loses_no_job(db: Database, tmp_path: Path) -> None:
    marks = tmp_path / "ran.txt"
    wf = submit(db, template(marks), base_dir=tmp_path, now=time.time())
    total = LAYERS * WIDTH

    first = start_agent(db.url, tmp_path / "home")
    try:
        wait_for("the first layer to finish", lambda: succeeded(db) >= WIDTH, 120, 0.1)
        assert workflow_status(db, wf) == "running"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    done_before = succeeded(db)
    assert done_before < total, "the workflow ended before the kill; make it longer"

    second = start_agent(db.url, tmp_path / "home")
    try:
        wait_for("the end", lambda: workflow_status(db, wf) not in ("pending", "running"), 180, 0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=30)
    assert second.returncode == 0, err.decode()

    assert workflow_status(db, wf) == "succeeded"
    with db.engine.connect() as conn:
        rows = list(conn.execute(sa.select(jobs.c.name, jobs.c.status, jobs.c.attempt)))
    assert len(rows) == total
    assert {r.status for r in rows} == {"succeeded"}
    # every job ran to completion at least once; a job lost in the kill may have run twice
    wait_for("orphaned jobs' writes", lambda: len(set(marks.read_text().split())) == total, 10, 0.1)
    assert set(marks.read_text().split()) == {r.name for r in rows}
    assert done_before >= WIDTH
