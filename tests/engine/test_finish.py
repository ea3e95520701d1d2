"""`finish`: a workflow starts no new work, and ends once what runs has ended."""

from __future__ import annotations

import time

from orchid.store import commands, works
from orchid.store.db import Database
from tests.engine.enginekit import EngineFactory, ScriptedExecutor, describe, jobs_of


def statuses(db: Database, wf_id: int) -> dict[str, str]:
    """Each work's status (a loop's work: its last iteration)."""
    with db.engine.connect() as conn:
        return {w.name: str(w.status) for w in works.list_for(conn, wf_id)}


def test_finish_lets_running_work_end_and_starts_nothing_new(make_engine: EngineFactory) -> None:
    ex = ScriptedExecutor()
    e = make_engine(ex)
    wf_id = e.submit(
        {
            "name": "fin",
            "works": [
                {"name": "a", "noop": True, "parameters": {"hold": True}},
                {"name": "b", "noop": True, "after": ["a"]},
            ],
            "loops": [
                {"name": "L", "works": ["c"], "after": ["a"], "until": "false", "max_iterations": 5}
            ],
        }
        | {
            "works": [
                {"name": "a", "noop": True, "parameters": {"hold": True}},
                {"name": "b", "noop": True, "after": ["a"]},
                {"name": "c", "noop": True},
            ]
        }
    )
    e.run_until(wf_id, lambda: "running" in {str(j.status) for j in jobs_of(e.db, wf_id)})
    with e.db.begin() as conn:
        commands.add(conn, wf_id, "finish", time.time())
    for _ in range(10):
        e.runner.run_once()
    assert statuses(e.db, wf_id)["a"] == "running"  # what runs is left to end
    ex.release()
    wf = e.drain(wf_id)
    assert wf.status == "succeeded", describe(e.db, wf_id)
    assert statuses(e.db, wf_id) == {"a": "succeeded", "b": "skipped", "c": "skipped"}
    assert [j.work_name for j in jobs_of(e.db, wf_id)] == ["a"]


def test_finish_of_an_ended_workflow_is_refused(make_engine: EngineFactory) -> None:
    e = make_engine()
    wf_id, _ = e.run({"name": "done", "works": [{"name": "a", "noop": True}]})
    with e.db.begin() as conn:
        cid = commands.add(conn, wf_id, "finish", time.time())
    for _ in range(5):
        e.runner.run_once()
    with e.db.engine.connect() as conn:
        status, message = commands.get(conn, cid) or ("", "")
    assert status == "rejected" and "already ended" in message
