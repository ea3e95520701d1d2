"""Two complete runners on one database, as two ``orchid agents`` processes would be.

Each runner has its own agents (their own lease owners), its own executor, bus and
template cache, and its own connection pool. Leases must make every job run exactly once.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchid.core.states import TERMINAL_WORKFLOW
from orchid.store import commands
from orchid.store import works as works_store
from orchid.store.db import Database
from tests.engine.enginekit import (
    Engine,
    EngineFactory,
    ScriptedExecutor,
    TickingClock,
    describe,
    edges_of,
    jobs_of,
    workflow,
    works_of,
)

N_JOBS = 500


def big_dag(seed: int = 7, n_jobs: int = N_JOBS) -> dict[str, Any]:
    """Static noop jobs over three works with parents inside and across works."""
    rng = random.Random(seed)
    names = [f"j{i}" for i in range(n_jobs)]
    work_of = {n: f"w{i * 3 // n_jobs}" for i, n in enumerate(names)}
    listed: dict[str, list[dict[str, Any]]] = {"w0": [], "w1": [], "w2": []}
    for i, name in enumerate(names):
        earlier = names[max(0, i - 60) : i]
        parents = rng.sample(earlier, min(len(earlier), rng.choice([0, 1, 2, 3])))
        refs = [p if work_of[p] == work_of[name] else f"{work_of[p]}/{p}" for p in parents]
        listed[work_of[name]].append({"name": name, "parents": refs})
    return {
        "name": "big",
        "works": [
            {"name": "w0", "noop": True, "jobs": listed["w0"]},
            {"name": "w1", "noop": True, "jobs": listed["w1"]},
            {"name": "w2", "noop": True, "jobs": listed["w2"], "after": ["w0"]},
            {"name": "fin", "noop": True, "after": ["w1", "w2"]},
        ],
    }


@pytest.fixture
def second_db(db: Database) -> Any:
    """A second engine on the same database: what another process would open."""
    other = Database(db.url)
    yield other
    other.dispose()


def two_engines(make_engine: EngineFactory, second_db: Database) -> tuple[Engine, Engine]:
    clock = TickingClock()
    a = make_engine(ScriptedExecutor(clock), batch=40, clock=clock)
    b = make_engine(ScriptedExecutor(clock), database=second_db, batch=40, clock=clock)
    owners_a = {agent.owner for agent in a.runner.agents}  # type: ignore[attr-defined]
    owners_b = {agent.owner for agent in b.runner.agents}  # type: ignore[attr-defined]
    assert len(owners_a | owners_b) == len(a.runner.agents) + len(b.runner.agents)
    return a, b


def check_ran_once(db: Database, wf_id: int, ran_by: Counter[str] | None = None) -> None:
    wf = workflow(db, wf_id)
    assert wf.status == "succeeded", describe(db, wf_id)
    js = jobs_of(db, wf_id)
    assert len(js) == N_JOBS + 1
    bad = [(j.work_name, j.name, str(j.status), j.attempt) for j in js if j.attempt != 1]
    assert not bad, f"jobs that ran more than once (or never): {bad[:20]}"
    assert all(j.status == "succeeded" for j in js)
    ws = works_of(db, wf_id)
    assert sorted(w.name for w in ws) == ["fin", "w0", "w1", "w2"]  # no work written twice
    assert all(w.status == "succeeded" for w in ws)
    done = {j.id: j.finished_at for j in js}
    ready = {j.id: j.ready_at for j in js}
    for parent, child in edges_of(db, wf_id):
        assert ready[child] is not None and done[parent] is not None
        assert ready[child] > done[parent]


def check_submitted_once(a: Engine, b: Engine) -> None:
    """Both carriers ran jobs, and no job was handed to an executor twice."""
    sent_a = [s.job_id for s in a.executor.submitted]  # type: ignore[attr-defined]
    sent_b = [s.job_id for s in b.executor.submitted]  # type: ignore[attr-defined]
    assert sent_a and sent_b
    assert len(sent_a) + len(sent_b) == len(set(sent_a) | set(sent_b)) == N_JOBS + 1


def test_two_runners_taking_turns_run_every_job_once(
    make_engine: EngineFactory, second_db: Database
) -> None:
    a, b = two_engines(make_engine, second_db)
    wf_id = a.submit(big_dag())
    did = Counter[str]()
    for _ in range(2_000):
        if workflow(a.db, wf_id).status in TERMINAL_WORKFLOW:
            break
        did["a"] += a.runner.run_once()
        did["b"] += b.runner.run_once()
    else:
        pytest.fail(f"the workflow did not end:\n{describe(a.db, wf_id)}")
    check_ran_once(a.db, wf_id)
    assert did["a"] and did["b"], did  # both took part
    check_submitted_once(a, b)


@pytest.mark.parametrize(
    "db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_two_runners_in_threads_run_every_job_once(
    make_engine: EngineFactory, second_db: Database
) -> None:
    """Many agent processes share one PostgreSQL: here two runners at once, in two threads."""
    a, b = two_engines(make_engine, second_db)
    wf_id = a.submit(big_dag(seed=11))
    errors: list[BaseException] = []

    def finished() -> bool:
        return workflow(a.db, wf_id).status in TERMINAL_WORKFLOW

    def loop(engine: Engine) -> None:
        try:
            engine.runner.run(until=finished, check_every=0.05)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
            a.runner.stop()
            b.runner.stop()

    threads = [threading.Thread(target=loop, args=(e,), daemon=True) for e in (a, b)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        a.runner.stop()
        b.runner.stop()
        for t in threads:
            t.join(timeout=10)
        pytest.fail(f"the runners did not finish:\n{describe(a.db, wf_id)}")
    assert not errors, errors
    check_ran_once(a.db, wf_id)
    check_submitted_once(a, b)


def test_a_runner_that_dies_loses_no_job(
    make_engine: EngineFactory, second_db: Database, tmp_path: Path
) -> None:
    """Runner A claims jobs and stops; B takes them over once their leases run out."""
    dead = make_engine("null")
    wf_id = dead.submit(big_dag(n_jobs=30))
    for _ in range(3):
        dead.runner.run_once()
    claimed = [j for j in jobs_of(dead.db, wf_id) if j.status in ("submitted", "running")]
    assert claimed, describe(dead.db, wf_id)

    later = time.time() + 120  # beyond every lease the dead runner held
    b = make_engine("null", database=second_db, clock=lambda: time.time() + 120)
    assert later - time.time() > 100
    for _ in range(500):
        if workflow(b.db, wf_id).status in TERMINAL_WORKFLOW:
            break
        b.runner.run_once()
    assert workflow(b.db, wf_id).status == "succeeded", describe(b.db, wf_id)
    by_id = {j.id: j for j in jobs_of(b.db, wf_id)}
    assert {by_id[j.id].attempt for j in claimed} == {2}
    assert all(j.status == "succeeded" for j in by_id.values())
    # the dead runner wakes up: its reports of the lost attempts change nothing
    for _ in range(3):
        dead.runner.run_once()
    assert {j.id: (j.status, j.attempt) for j in jobs_of(b.db, wf_id)} == {
        j.id: (j.status, j.attempt) for j in by_id.values()
    }
    assert workflow(b.db, wf_id).status == "succeeded"


def lock_waiters(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def pause(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, *, after: bool
) -> tuple[threading.Event, threading.Event]:
    """Make ``module.name`` stop before (or after) it runs until released: (reached, go)."""
    reached, go = threading.Event(), threading.Event()
    original = getattr(module, name)

    def paused(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs) if after else None
        reached.set()
        go.wait(30)
        return result if after else original(*args, **kwargs)

    monkeypatch.setattr(module, name, paused)
    return reached, go


@pytest.mark.parametrize(
    "db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_abort_racing_a_transformer_leaves_no_job_behind(
    make_engine: EngineFactory, second_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Process 1's transformer makes a work's jobs while process 2's clerk applies an abort.

    The interleaving is forced: the clerk has claimed the workflow when the transformer
    starts, and the transformer commits only once the clerk waits for its lock.
    """
    one = make_engine()
    two = make_engine(database=second_db)
    wf_id = one.submit(
        {"name": "race", "works": [{"name": "a", "noop": True, "map": {"items": [{}, {}, {}]}}]}
    )
    clerk_one, transformer_one = one.runner.agents[0], one.runner.agents[1]
    clerk_two = two.runner.agents[0]
    clerk_one.run_once()  # the workflow runs; work a is ready
    with one.db.begin() as conn:
        commands.add(conn, wf_id, "abort", time.time())

    # the clerk of process 2 has claimed the workflow; it stops before reading the commands
    clerk_reached, clerk_go = pause(monkeypatch, commands, "pending", after=False)
    # the transformer of process 1 has written the jobs; it stops before committing
    made, commit = pause(monkeypatch, works_store, "mark_running", after=True)
    threads = [
        threading.Thread(target=clerk_two.run_once, daemon=True),
        threading.Thread(target=transformer_one.run_once, daemon=True),
    ]
    try:
        threads[0].start()
        assert clerk_reached.wait(30)
        threads[1].start()
        assert made.wait(30)
        clerk_go.set()  # the abort now waits for the work row the transformer holds
        for _ in range(1000):
            if lock_waiters(one.db):
                break
            time.sleep(0.01)
        else:
            pytest.fail("the clerk never waited for the transformer")
    finally:
        clerk_go.set()
        commit.set()
        for t in threads:
            t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    monkeypatch.undo()

    for _ in range(10):
        one.runner.run_once()
    assert workflow(one.db, wf_id).status == "cancelled"
    left = Counter(str(j.status) for j in jobs_of(one.db, wf_id))
    assert left == {"cancelled": 3}, describe(one.db, wf_id)
