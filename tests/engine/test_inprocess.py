"""``orchid.engine.inprocess.Engine``: the agents in a thread, owning every executor."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchid.engine.inprocess import Engine
from orchid.engine.submit import submit
from orchid.settings import Settings
from orchid.store import jobs
from orchid.store.db import Database

SLOW = {"name": "slow", "works": [{"name": "nap", "command": ["sleep", "30"]}]}
QUICK = {"name": "quick", "works": [{"name": "hi", "command": ["echo", "hi"]}]}


def _here(tmp_path: Path) -> tuple[Settings, Database]:
    settings = Settings.load(
        env={}, home=tmp_path, db=str(tmp_path / "o.db"), workers=2, poll_interval=0.05
    )
    db = Database(settings.db_url)
    db.upgrade()
    return settings, db


def test_the_engine_owns_its_executors_and_closing_hands_running_jobs_back(
    tmp_path: Path,
) -> None:
    settings, db = _here(tmp_path)
    wf = submit(db, SLOW, base_dir=tmp_path, now=time.time())
    with Engine(settings, db) as engine:
        assert engine.runner.executors == [engine.runner.executor]  # closed with the runner
        engine.start()

        deadline = time.monotonic() + 30
        while True:
            with db.engine.connect() as conn:
                if [str(j.status) for j in jobs.list_for(conn, wf)] == ["running"]:
                    break
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.05)
    # closing stopped the job and gave it back at once, for other agents to run
    with db.engine.connect() as conn:
        (job,) = jobs.list_for(conn, wf)
    assert str(job.status) == "ready"
    assert engine.stopped.is_set()
    db.dispose()


def test_wait_returns_when_the_workflow_ended(tmp_path: Path) -> None:
    settings, db = _here(tmp_path)
    wf = submit(db, QUICK, base_dir=tmp_path, now=time.time())
    with Engine(settings, db) as engine:
        assert not engine.ended(wf)
        engine.start()
        engine.wait(wf, timeout=60)
        assert engine.ended(wf)
    db.dispose()


def test_wait_raises_what_stopped_the_agents_or_times_out(tmp_path: Path) -> None:
    settings, db = _here(tmp_path)
    wf = submit(db, QUICK, base_dir=tmp_path, now=time.time())
    with Engine(settings, db) as engine:
        with pytest.raises(TimeoutError, match=f"workflow {wf} did not end"):
            engine.wait(wf, timeout=0.1)  # no agents yet

        def broken(**_: object) -> None:
            raise OSError("the disk is full")

        engine.runner.run = broken  # type: ignore[method-assign]
        engine.start()
        with pytest.raises(OSError, match="the disk is full"):
            engine.wait(wf, timeout=60)
    db.dispose()
