"""Run workflows in-process for your own tests: no server, a throw-away SQLite database.

from orchid.testing import run_workflow

def test_my_pipeline(tmp_path):
    result = run_workflow("pipeline.yaml", params={"n": 3}, home=tmp_path)
    assert result.status == "succeeded"
    assert result.outputs("merge") == {"best": 42}
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchid.core.model import Job, Work, Workflow
from orchid.engine.inprocess import Engine
from orchid.engine.submit import load_template, submit
from orchid.settings import Settings
from orchid.store import jobs, workflows, works
from orchid.store.db import Database

__all__ = ["RunResult", "run_workflow"]


@dataclass(frozen=True)
class RunResult:
    """A finished workflow: its status, works and jobs, read back from the database."""

    workflow: Workflow
    works: list[Work]
    jobs: list[Job]
    many: frozenset[str] = frozenset()  # works that map or list jobs: outputs is a list

    @property
    def status(self) -> str:
        return str(self.workflow.status)

    def results(self, work: str) -> list[Any]:
        """Results of a work's succeeded jobs (the last iteration's, for a loop's work)."""
        last = max((w.iteration for w in self.works if w.name == work), default=0)
        ids = {w.id for w in self.works if w.name == work and w.iteration == last}
        return [j.result for j in self.jobs if j.work_id in ids and j.status == "succeeded"]

    def outputs(self, work: str) -> Any:
        """What ``works.<work>.outputs`` gives in expressions: one result, or the list."""
        res = self.results(work)
        if work in self.many:
            return res
        return res[0] if res else None


def run_workflow(
    template: str | Path | dict[str, Any],
    *,
    params: dict[str, Any] | None = None,
    home: Path,
    executor: str = "local",
    workers: int = 2,
    timeout: float = 600.0,
    base_dir: Path | None = None,
) -> RunResult:
    """Submit and run a workflow to its end in this process; return what happened.

    ``template`` is a path to a YAML/JSON file or an already decoded template.
    ``home`` holds the database and job logs. Raises TimeoutError after ``timeout`` s.
    """
    if isinstance(template, dict):
        raw, base = template, base_dir
    else:
        raw, base = load_template(Path(template))
    settings = Settings.load(
        env={},
        home=home,
        db=str(home / "orchid.db"),
        executor=executor,
        workers=workers,
        poll_interval=0.05,
    )
    db = Database(settings.db_url, lease_seconds=settings.lease_seconds)
    db.upgrade()
    wf_id = submit(
        db, raw, base_dir=base, params=params or {}, now=time.time(), limits=settings.limits
    )
    with Engine(settings, db) as engine:
        engine.start()
        engine.wait(wf_id, timeout)
    with db.engine.connect() as conn:
        result = RunResult(
            workflow=workflows.get(conn, wf_id),
            works=works.list_for(conn, wf_id),
            jobs=jobs.list_for(conn, wf_id, limit=1_000_000),
            many=frozenset(
                w.get("name")
                for w in raw.get("works", [])
                if "map" in w or "jobs" in w or "input" in w
            ),
        )
    db.dispose()
    return result
