"""Helpers for end-to-end engine tests: build runners, drive them to the end, read the outcome.

Every wait is bounded by rounds and by a generous deadline, so a bug fails the test with a
description of the workflow instead of hanging it. No helper asserts how long anything took.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchid.core.model import Job, Work, Workflow
from orchid.core.states import TERMINAL_WORKFLOW
from orchid.engine.runner import Runner, make_runner
from orchid.engine.submit import submit
from orchid.executors.base import Executor, JobSpec, JobUpdate
from orchid.settings import Settings
from orchid.store import events, jobs, workflows, works
from orchid.store.db import Database
from orchid.store.tables import job_edges
from orchid.store.tables import jobs as jobs_table
from orchid.store.tables import workflows as workflows_table

DEADLINE_S = 60.0  # only reached when something is stuck


class TickingClock:
    """Epoch seconds that strictly increase on every reading (by a microsecond), from now.

    Shared by runners and executors, it orders every timestamp they write without
    depending on the machine's wall clock; leases still last their real length in readings.
    """

    def __init__(self, step: float = 1e-6) -> None:
        self._lock = threading.Lock()
        self._now = time.time()
        self._step = step

    def __call__(self) -> float:
        with self._lock:
            self._now += self._step
            return self._now


def python_cmd(code: str, *extra: str) -> list[str]:
    """A command running ``code`` with this interpreter (``{arg}`` placeholders allowed)."""
    return [sys.executable, "-c", code, *extra]


def workflow(db: Database, wf_id: int) -> Workflow:
    with db.begin() as conn:
        return workflows.get(conn, wf_id)


def works_of(db: Database, wf_id: int) -> list[Work]:
    with db.begin() as conn:
        return works.list_for(conn, wf_id)


def jobs_of(db: Database, wf_id: int) -> list[Job]:
    with db.begin() as conn:
        return jobs.list_for(conn, wf_id, limit=1_000_000)


def loops_of(db: Database, wf_id: int) -> dict[str, Any]:
    with db.begin() as conn:
        return dict(
            conn.execute(
                sa.select(workflows_table.c.loops).where(workflows_table.c.id == wf_id)
            ).scalar_one()
        )


def events_of(db: Database, wf_id: int) -> list[dict[str, Any]]:
    with db.begin() as conn:
        return events.since(conn, wf_id, 0, limit=100_000)


def edges_of(db: Database, wf_id: int) -> list[tuple[int, int]]:
    with db.begin() as conn:
        rows = conn.execute(
            sa.select(job_edges.c.parent_id, job_edges.c.child_id)
            .join(jobs_table, jobs_table.c.id == job_edges.c.child_id)
            .where(jobs_table.c.workflow_id == wf_id)
        )
        return [(int(p), int(c)) for p, c in rows]


def describe(db: Database, wf_id: int) -> str:
    """The workflow, its works with job counts, its loops and its jobs by status: for failures."""
    wf = workflow(db, wf_id)
    lines = [f"workflow {wf_id} {wf.status} {wf.message!r}"]
    for w in works_of(db, wf_id):
        counts = {str(k): v for k, v in w.counts.items()}
        lines.append(f"  work {w.name}#{w.iteration} {w.status} {w.message!r} jobs={counts}")
    lines.append(f"  loops {loops_of(db, wf_id)}")
    by_status = Counter(str(j.status) for j in jobs_of(db, wf_id))
    lines.append(f"  jobs {dict(by_status)}")
    return "\n".join(lines)


def run_until(
    runner: Runner,
    db: Database,
    wf_id: int,
    done: Callable[[], bool],
    *,
    what: str = "the condition",
    max_rounds: int = 5_000,
    idle_sleep: float = 0.0,
    deadline_s: float = DEADLINE_S,
) -> int:
    """Call ``runner.run_once`` until ``done()``; return the rounds it took.

    ``idle_sleep`` is slept after a round that did nothing (for executors that run real
    processes). Fails with a description of the workflow when rounds or time run out.
    """
    deadline = time.monotonic() + deadline_s
    for rounds in range(max_rounds + 1):
        if done():
            return rounds
        if time.monotonic() > deadline:
            break
        if not runner.run_once() and idle_sleep:
            time.sleep(idle_sleep)
    pytest.fail(f"{what} did not happen in {rounds} rounds:\n{describe(db, wf_id)}")


def drain(
    runner: Runner,
    db: Database,
    wf_id: int,
    *,
    max_rounds: int = 5_000,
    idle_sleep: float = 0.0,
    deadline_s: float = DEADLINE_S,
) -> Workflow:
    """Run the agents until the workflow ends; return it."""
    run_until(
        runner,
        db,
        wf_id,
        lambda: workflow(db, wf_id).status in TERMINAL_WORKFLOW,
        what=f"the end of workflow {wf_id}",
        max_rounds=max_rounds,
        idle_sleep=idle_sleep,
        deadline_s=deadline_s,
    )
    return workflow(db, wf_id)


@dataclass
class Engine:
    """One database, one runner with all four agents, and its executor."""

    db: Database
    runner: Runner
    executor: Executor
    base_dir: Path

    @property
    def real_processes(self) -> bool:
        return self.executor.name == "local"

    def submit(self, template: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> int:
        return submit(
            self.db, dict(template), base_dir=self.base_dir, params=params or {}, now=time.time()
        )

    def drain(self, wf_id: int, **kwargs: Any) -> Workflow:
        kwargs.setdefault("idle_sleep", 0.01 if self.real_processes else 0.0)
        return drain(self.runner, self.db, wf_id, **kwargs)

    def run_until(self, wf_id: int, done: Callable[[], bool], **kwargs: Any) -> int:
        kwargs.setdefault("idle_sleep", 0.01 if self.real_processes else 0.0)
        return run_until(self.runner, self.db, wf_id, done, **kwargs)

    def run(self, template: Mapping[str, Any], **kwargs: Any) -> tuple[int, Workflow]:
        """Submit and drain."""
        wf_id = self.submit(template, kwargs.pop("params", None))
        return wf_id, self.drain(wf_id, **kwargs)


def settings_for(db: Database, home: Path, executor: str = "null", **kw: Any) -> Settings:
    kw.setdefault("workers", 2)
    kw.setdefault("poll_interval", 0.05)
    kw.setdefault("bus", "memory")  # tests drive the loop themselves; tests/bus tests the others
    return Settings.load(env={}, db=db.url, home=home, executor=executor, **kw)


EngineFactory = Callable[..., Engine]


def engine_factory(db: Database, home: Path, closers: list[Callable[[], None]]) -> EngineFactory:
    def make(
        executor: str | Executor = "null",
        *,
        database: Database | None = None,
        clock: Callable[[], float] = time.time,
        **kw: Any,
    ) -> Engine:
        database = database or db
        name = executor if isinstance(executor, str) else "null"  # settings need a known one
        settings = settings_for(database, home, name, **kw)
        runner = make_runner(
            settings,
            database,
            executor=None if isinstance(executor, str) else executor,
            clock=clock,
        )
        ex = runner.executor
        closers.append(ex.close)
        closers.append(runner.bus.close)
        home.mkdir(parents=True, exist_ok=True)
        return Engine(database, runner, ex, home)

    return make


class ScriptedExecutor:
    """Like the null executor, but a job whose args say ``fail_attempts: n`` fails its first n
    attempts (exit code 1), and one with ``hold: true`` stays running until ``release()``."""

    name = "scripted"
    durable = False

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._updates: list[JobUpdate] = []
        self.held: dict[str, JobSpec] = {}
        self.submitted: list[JobSpec] = []
        self.cancelled: list[str] = []

    def capacity(self) -> int:
        return 100_000

    def submit(self, specs: Sequence[JobSpec]) -> None:
        now = self._clock()
        for s in specs:
            self.submitted.append(s)
            if s.args.get("hold"):
                self.held[s.key] = s
                self._updates.append(JobUpdate(s.key, s.job_id, s.attempt, "running", now))
            else:
                self._updates.append(self._final(s, now))

    def _final(self, s: JobSpec, now: float) -> JobUpdate:
        if s.attempt <= int(s.args.get("fail_attempts", 0)):
            return JobUpdate(s.key, s.job_id, s.attempt, "failed", now, exit_code=1, error="exit 1")
        return JobUpdate(
            s.key, s.job_id, s.attempt, "succeeded", now, exit_code=0, result=s.args.get("result")
        )

    def release(self) -> None:
        """Let every held job end (as its args say)."""
        now = self._clock()
        for s in self.held.values():
            self._updates.append(self._final(s, now))
        self.held.clear()

    def poll(self) -> list[JobUpdate]:
        updates, self._updates = self._updates, []
        return updates

    def cancel(self, keys: Sequence[str]) -> None:
        now = self._clock()
        for key in keys:
            s = self.held.pop(key, None)
            self.cancelled.append(key)
            if s is not None:
                self._updates.append(
                    JobUpdate(s.key, s.job_id, s.attempt, "failed", now, error="cancelled")
                )

    def close(self) -> None:
        self.held.clear()


def check_adoption(db: Database, settings: Settings, tmp_path: Path, where: str) -> None:
    """An agent dies while three jobs run on the durable executor ``settings`` route every
    work to ``where`` (``lease_seconds`` short); the next agent adopts them: each ran
    once, and each ends in its first attempt."""
    marks, gate = tmp_path / "marks", tmp_path / "gate"
    code = (
        "import os, sys, time\n"
        "open(sys.argv[1], 'a').write(os.environ['ORCHID_JOB_KEY'] + '\\n')\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.02)\n"
        "print(int(os.environ['ORCHID_JOB_NAME']) + 100)\n"
    )
    template = {
        "name": "adopted",
        "defaults": {"executor": where},
        "works": [
            {
                "name": "w",
                "command": ["python", "-c", code, str(marks), str(gate)],
                "map": {"items": [{}] * 3},
            }
        ],
    }
    executors = settings.executor_names
    wf = submit(db, template, base_dir=tmp_path, now=time.time(), executors=executors)
    first = make_runner(settings, db)
    run_until(
        first,
        db,
        wf,
        lambda: marks.exists() and len(marks.read_text().split()) == 3,
        what=f"three jobs running on {where}",
        idle_sleep=0.02,
    )
    for ex in first.executors:  # the agent dies: its jobs go on, its leases expire
        ex.close()
    gate.touch()
    second = make_runner(settings, db)
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
