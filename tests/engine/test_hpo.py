"""The HPO agent end to end on SQLite and PostgreSQL: trials as jobs, asynchronous slots,
failures, pruning, segments, custom generators, abort."""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchid.executors.base import JobSpec, JobUpdate
from orchid.store import studies
from orchid.store.db import Database
from orchid.store.tables import studies as studies_table
from tests.engine.enginekit import EngineFactory, jobs_of, works_of

HERE = Path(__file__).resolve().parents[1] / "hpo"


class FunctionExecutor:
    """Runs each job as ``f(args)`` in the test process: succeeded with its return value,
    failed if it raises. Jobs stay running until ``step()`` lets ``per_step`` of them end
    (None: at once), so tests can watch slots free one at a time."""

    name = "function"

    def __init__(self, f: Callable[[dict[str, Any]], Any], per_step: int | None = None) -> None:
        self.f = f
        self.per_step = per_step
        self.running: list[JobSpec] = []
        self.updates: list[JobUpdate] = []
        self.submitted: list[JobSpec] = []
        self.cancelled: list[str] = []
        self.max_running = 0

    def capacity(self) -> int:
        return 100_000

    def submit(self, specs: Sequence[JobSpec]) -> None:
        for s in specs:
            if s.payload.kind == "noop":
                self.updates.append(JobUpdate(s.key, s.job_id, s.attempt, "succeeded", time.time()))
                continue
            self.submitted.append(s)
            self.updates.append(JobUpdate(s.key, s.job_id, s.attempt, "running", time.time()))
            self.running.append(s)
        self.max_running = max(self.max_running, len(self.running))
        if self.per_step is None:
            self.step(len(self.running))

    def step(self, n: int | None = None) -> None:
        n = self.per_step if n is None else n
        done, self.running = self.running[:n], self.running[n:]
        for s in done:
            now = time.time()
            try:
                result = self.f(dict(s.args))
            except Exception as exc:
                self.updates.append(JobUpdate(s.key, s.job_id, s.attempt, "failed", now, exit_code=1, error=str(exc)))
            else:
                self.updates.append(JobUpdate(s.key, s.job_id, s.attempt, "succeeded", now, exit_code=0, result=result))

    def poll(self) -> list[JobUpdate]:
        out, self.updates = self.updates, []
        return out

    def cancel(self, keys: Sequence[str]) -> None:
        for s in [s for s in self.running if s.key in keys]:
            self.running.remove(s)
            self.cancelled.append(s.key)
            self.updates.append(JobUpdate(s.key, s.job_id, s.attempt, "failed", time.time(), error="cancelled"))

    def close(self) -> None:
        self.running.clear()


def quadratic(args: dict[str, Any]) -> dict[str, float]:
    return {"loss": (args["x"] - 0.3) ** 2 + (args["y"] - 2) ** 2 / 10}


SPACE = {
    "x": {"type": "float", "low": -1.0, "high": 1.0},
    "y": {"type": "int", "low": 0, "high": 5},
}


def template(**hpo: Any) -> dict[str, Any]:
    spec = {"space": SPACE, "objective": "loss", "max_trials": 12, "parallel": 3, "seed": 1, **hpo}
    work: dict[str, Any] = {"name": "tune", "function": "m:f", "hpo": spec}
    if spec.get("mode") == "pull":
        del work["function"]
    return {
        "name": "hpo",
        "works": [
            work,
            {
                "name": "use",
                "after": ["tune"],
                "noop": True,
                "parameters": {"best": "${works.tune.outputs}"},
            },
        ],
    }


def study_rows(db: Database, wf_id: int) -> list[studies.StudyRow]:
    with db.engine.connect() as conn:
        return [s for s, _, _ in studies.of_workflow(conn, wf_id)]


def trials(db: Database, wf_id: int) -> list[studies.TrialRow]:
    (study,) = study_rows(db, wf_id)
    with db.engine.connect() as conn:
        return studies.trials_of(conn, study.id)


def test_trials_run_as_jobs_and_the_best_comes_out(make_engine: EngineFactory, db: Database) -> None:
    ex = FunctionExecutor(quadratic, per_step=1)
    eng = make_engine(ex)
    wf_id = eng.submit(template())
    eng.run_until(wf_id, lambda: len(ex.running) == 3)
    # asynchronous: one trial ends, one new one starts; never more than `parallel` at once
    for _ in range(9):
        ex.step()
        eng.run_until(wf_id, lambda: len(ex.running) == 3 or len(ex.submitted) == 12)
    assert len(ex.submitted) == 12
    ex.step(100)
    wf = eng.drain(wf_id)
    assert wf.status == "succeeded", wf.message
    assert ex.max_running == 3
    ts = trials(db, wf_id)
    assert [t.number for t in ts] == list(range(12))
    assert all(t.status == "complete" for t in ts)
    best = min(ts, key=lambda t: t.values[0] if t.values else math.inf)
    (study,) = study_rows(db, wf_id)
    assert study.status == "succeeded"
    assert study.summary is not None
    assert study.summary["best"]["params"] == best.params
    assert study.summary["best"]["value"] == best.values[0]
    # downstream reads the study's summary as the work's outputs
    use = next(j for j in jobs_of(db, wf_id) if j.work_name == "use")
    assert use.args["best"]["best"]["number"] == best.number
    tune = next(w for w in works_of(db, wf_id) if w.name == "tune")
    assert tune.status == "succeeded" and tune.counts == {"succeeded": 12}
