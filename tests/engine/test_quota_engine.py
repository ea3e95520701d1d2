"""Limits through the agents (issue 21): jobs a ``map:`` makes at run time count for
``jobs_per_workflow`` and ``queued``, and results recorded by the carrier count for
``result_bytes``. SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

from orchid.engine.submit import submit
from orchid.store import quotas
from orchid.store.db import Database
from tests.engine.enginekit import EngineFactory, ScriptedExecutor, jobs_of, works_of


def set_(db: Database, kind: str, subject: str, quota: str, value: int) -> None:
    with db.begin() as conn:
        quotas.set_quota(conn, quotas.Quota(kind, subject, quota, value), time.time())


def template(mapped: int, listed: int = 2) -> dict[str, Any]:
    return {
        "name": "sweep",
        "works": [
            {"name": "first", "noop": True, "jobs": [{"name": f"j{i}"} for i in range(listed)]},
            {
                "name": "sweep",
                "noop": True,
                "after": ["first"],
                "map": {"zip": {"v": list(range(mapped))}},
            },
        ],
    }


def sweep(db: Database, wf_id: int) -> Any:
    return next(w for w in works_of(db, wf_id) if w.name == "sweep")


def test_a_map_that_would_pass_jobs_per_workflow_fails_its_work(
    make_engine: EngineFactory,
) -> None:
    e = make_engine("null")
    set_(e.db, "user", "local", "jobs_per_workflow", 5)
    wf_id, wf = e.run(template(4))  # 2 listed (accepted at submission), then 4 more
    assert wf.status == "failed"
    work = sweep(e.db, wf_id)
    assert work.status == "failed"
    assert work.message == (
        "cannot make jobs: limit jobs_per_workflow of user local is 5, 2 used: the map would "
        "make 4 more jobs; make the map smaller, or ask an admin to raise it"
    )
    assert len(jobs_of(e.db, wf_id)) == 2  # none of the map's was written
    wf_id, wf = e.run(template(3))  # 5 in all: fits
    assert wf.status == "succeeded"
    assert len(jobs_of(e.db, wf_id)) == 5


def test_a_map_that_would_pass_queued_fails_its_work(make_engine: EngineFactory) -> None:
    e = make_engine("null")
    set_(e.db, "group", "g", "queued", 3)

    def run(mapped: int) -> tuple[int, str]:
        wf_id = submit(
            e.db, template(mapped), base_dir=e.base_dir, now=time.time(), share_group="g"
        )
        return wf_id, e.drain(wf_id).status

    wf_id, status = run(4)  # its listed jobs have run: 0 queued, then 4 at once
    assert status == "failed"
    assert sweep(e.db, wf_id).message == (
        "cannot make jobs: limit queued of group g is 3, 0 used: the map would make 4 more "
        "jobs; make the map smaller, retry the work when fewer jobs wait (`orchid retry`), "
        "or ask an admin to raise it (`orchid quota set`)"
    )
    assert run(3)[1] == "succeeded"


def test_results_over_result_bytes_fail_their_jobs(make_engine: EngineFactory) -> None:
    e = make_engine(ScriptedExecutor())
    set_(e.db, "user", "local", "result_bytes", 10)
    results = ["rrrr", "ssss", "tttt"]  # 6 bytes each as JSON: only one fits
    wf_id, wf = e.run(
        {"name": "r", "works": [{"name": "a", "noop": True, "map": {"zip": {"result": results}}}]}
    )
    assert wf.status == "failed"
    jobs = jobs_of(e.db, wf_id)
    assert sorted(j.status for j in jobs) == ["failed", "failed", "succeeded"]
    for j in jobs:
        if j.status == "failed":
            assert j.result is None
            assert j.error is not None and j.error.startswith(
                "limit result_bytes of user local is 10, 6 used: this result of 6 more bytes"
            )
    with e.db.engine.connect() as conn:
        (u,) = quotas.usage(conn, time.time())
    assert u.used == 6
