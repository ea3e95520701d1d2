"""Function-as-a-Task end to end on the embedded engine: real agents, real orchid-job
processes, SQLite (and PostgreSQL where marked by the ``db`` fixture)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import fat_tasks
import pytest
import sqlalchemy as sa

from orchid.store.db import Database
from orchid.store.tables import jobs, workflows, works
from tests.fat.conftest import PAYLOADS, runs

pytestmark = pytest.mark.slow


def test_map_and_single_calls_on_both_databases(embedded_db: Database, marks: Path) -> None:
    assert fat_tasks.squares(5) == sum(i * i for i in range(5))
    with embedded_db.engine.connect() as conn:
        wf = conn.execute(sa.select(workflows)).one()
        rows = conn.execute(sa.select(works.c.name, works.c.status, works.c.n_jobs)).all()
    assert (wf.name, wf.status, wf.open) == ("squares", "succeeded", False)
    assert wf.params["fat"]["arguments"] == {"args": [], "kwargs": {"n": 5}}
    ((name, status, n_jobs),) = rows
    assert name.startswith("square-") and status == "succeeded" and n_jobs == 5
    # the work is a template work like any other: it is in the workflow's template
    assert [w["name"] for w in wf.template["works"]] == [name]
    assert wf.template["works"][0]["command"][0] == "orchid-job"


def test_failing_task_is_retried_caught_and_branched(embedded: Path, marks: Path) -> None:
    out = fat_tasks.branchy(7)
    assert out["went"].startswith("fallback after: exit code 1")
    assert "no luck with 7" in out["went"]
    assert out["exact"] == Fraction(1, 4) and isinstance(out["exact"], Fraction)
    assert out["square"] == 49
    assert runs(marks, "fragile-7") == 2  # retries=1: two attempts


def test_the_remote_traceback_reaches_the_caller(embedded: Path, marks: Path) -> None:
    @fat_tasks.workflow(name="raises")
    def raises() -> int:
        return fat_tasks.fragile(3).result()

    with pytest.raises(fat_tasks.TaskFailed) as info:
        raises()
    err = info.value
    assert err.task == "fragile" and err.job_id is not None
    assert "Traceback (most recent call last)" in err.remote_traceback
    assert "ValueError: no luck with 3" in err.remote_traceback
    assert 'fat_tasks.py", line' in err.remote_traceback  # the user's own frame
    db = Database(f"sqlite:///{embedded / 'orchid.db'}")
    with db.engine.connect() as conn:
        (status, message) = conn.execute(sa.select(workflows.c.status, workflows.c.message)).one()
    db.dispose()
    assert status == "failed" and "the workflow function raised TaskFailed" in message


def test_a_thousand_mapped_jobs(embedded: Path) -> None:
    @fat_tasks.workflow(name="thousand")
    def thousand() -> list[int]:
        return fat_tasks.square.map([{"x": i} for i in range(1000)]).result()

    assert thousand() == [i * i for i in range(1000)]


def test_server_side_workflow_function_runs_as_a_job(embedded: Path) -> None:
    out = fat_tasks.squares_server(6)
    assert out["total"] == sum(i * i for i in range(6))
    assert out["first_seen"] in {i * i for i in range(6)}
    assert out["third"] == Fraction(1, 3)
    db = Database(f"sqlite:///{embedded / 'orchid.db'}")
    with db.engine.connect() as conn:
        names = conn.execute(sa.select(works.c.name).order_by(works.c.id)).scalars().all()
    db.dispose()
    assert names[0] == "workflow" and len(names) == 3  # its job added the other two


def test_a_restarted_client_reuses_finished_jobs(embedded: Path, marks: Path) -> None:
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import fat_tasks; "
        "print('result', fat_tasks.resumable(sys.argv[2]), flush=True)"
    )
    env = {**os.environ, "FAT_SLOW_2": "60", "ORCHID_LEASE_SECONDS": "2"}
    first = subprocess.Popen(
        [sys.executable, "-c", script, str(PAYLOADS), str(marks)],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not (marks / "first-done").exists() or runs(marks, "slow-2") == 0:
            assert first.poll() is None, first.communicate()[0]
            assert time.monotonic() < deadline, "the first step did not finish"
            time.sleep(0.05)
    finally:  # the client dies with its agents: nothing says goodbye
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        for pid in (marks / "slow-2.runs").read_text().split():  # its orphaned job too
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    assert runs(marks, "slow-1") == 1
    env["FAT_SLOW_2"] = "0"
    second = subprocess.run(
        [sys.executable, "-c", script, str(PAYLOADS), str(marks)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "result 3" in second.stdout
    assert runs(marks, "slow-1") == 1  # finished: reused, not run again
    assert runs(marks, "slow-2") >= 2  # was running when the client died: run again
    db = Database(f"sqlite:///{embedded / 'orchid.db'}")
    with db.engine.connect() as conn:
        n_workflows = conn.execute(sa.select(sa.func.count()).select_from(workflows)).scalar()
        attempts = conn.execute(sa.select(jobs.c.attempt).order_by(jobs.c.id)).scalars().all()
    db.dispose()
    assert n_workflows == 1  # the same workflow, found by name and arguments
    assert attempts[0] == 1
