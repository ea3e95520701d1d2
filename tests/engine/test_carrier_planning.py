"""The carrier's plans for executors that make all of a work's jobs up front (PanDA/JEDI).

A planning executor gets each work's complete job list before the first of its jobs, and
hears when each work it was told about has ended, with its final status. No PanDA here:
the executor is the scripted one, recording the calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchid.executors.base import JobSpec, Planning, WorkPlan
from orchid.store.db import Database
from tests.engine.enginekit import EngineFactory, ScriptedExecutor, jobs_of, works_of


class PlanningExecutor(ScriptedExecutor):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, object]] = []

    def plan(self, works: Sequence[WorkPlan]) -> None:
        self.calls += [("plan", w) for w in works]

    def works_ended(self, works: Mapping[int, str]) -> None:
        self.calls.append(("ended", dict(works)))

    def submit(self, specs: Sequence[JobSpec]) -> None:
        self.calls.append(("submit", [s.key for s in specs]))
        super().submit(specs)


def test_each_work_is_planned_whole_before_its_first_job_and_told_when_it_ends(
    make_engine: EngineFactory, db: Database
) -> None:
    ex = PlanningExecutor()
    assert isinstance(ex, Planning)
    eng = make_engine(ex, lease_seconds=2)
    template = {
        "name": "planned",
        "works": [
            {
                "name": "a",
                "command": ["true"],
                "jobs": [{"name": "1"}, {"name": "2"}],
                "retries": 2,
            },
            {
                "name": "b",
                "command": ["true"],
                "jobs": [
                    {"name": "x", "parents": ["a/1"]},
                    {"name": "y", "parents": ["a/2"], "args": {"fail_attempts": 9}},
                ],
            },
            {"name": "c", "command": ["true"], "jobs": [{"name": "z", "parents": ["b/y"]}]},
        ],
    }
    wf_id, wf = eng.run(template)
    assert wf.status == "failed"
    ids = {(j.work_name, j.name): j.id for j in jobs_of(db, wf_id)}
    plans = {p.work_name: p for kind, p in ex.calls if kind == "plan" and isinstance(p, WorkPlan)}
    assert set(plans) == {"a", "b"}  # c's only job was skipped: it never reached the executor
    assert plans["a"].jobs == ((ids["a", "1"], 3), (ids["a", "2"], 3))
    assert plans["b"].jobs == ((ids["b", "x"], 1), (ids["b", "y"], 1))  # y not yet ready: known
    for name, plan in plans.items():  # each plan came before the first job of its work
        first = next(
            i
            for i, (kind, keys) in enumerate(ex.calls)
            if kind == "submit"
            and any(k.split("-")[1] == str(ids[name, "1" if name == "a" else "x"]) for k in keys)  # type: ignore[union-attr]
        )
        assert ex.calls.index(("plan", plan)) < first
    eng.run_until(wf_id, lambda: len([c for c in ex.calls if c[0] == "ended"]) > 0, idle_sleep=0.05)
    ended: dict[int, str] = {}
    for kind, works in ex.calls:
        if kind == "ended":
            ended.update(works)  # type: ignore[arg-type]
    statuses = {w.id: w.status for w in works_of(db, wf_id)}
    assert ended and all(statuses[w] == s for w, s in ended.items())
