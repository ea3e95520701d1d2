"""Job rows in the store: set-based release against the pure reference, claims, leases, retries.

The workflows are written by ``submit`` (inline ``jobs:`` of static works); the agents'
steps are then taken by hand with the store's functions (claim, record, propagate) and an
explicit clock, so every expectation is exact. Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchid.core import dag
from orchid.core.retry import RetryPolicy
from orchid.core.states import WorkflowStatus
from orchid.engine.submit import submit
from orchid.executors.base import JobSpec, JobUpdate
from orchid.store import dispatch, graph, jobs, release, workflows, works
from orchid.store.db import Database
from orchid.store.tables import jobs as jobs_table

T0 = 1_000_000.0  # the explicit clock of these tests
LEASE = 30.0


# --- building and starting workflows -------------------------------------------------------


def static_template(
    graph: Mapping[str, Mapping[str, Sequence[str]]],
    *,
    retries: int = 0,
    retry_delay: float = 1.0,
    args: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A template of static noop works: ``{work: {job: [parent refs]}}``."""
    return {
        "name": "static",
        "works": [
            {
                "name": work,
                "noop": True,
                "retries": retries,
                "retry_delay": retry_delay,
                "jobs": [
                    {"name": job, "parents": list(parents), "args": dict((args or {}).get(job, {}))}
                    for job, parents in job_list.items()
                ],
            }
            for work, job_list in graph.items()
        ],
    }


def start(db: Database, wf_id: int, now: float = T0) -> None:
    """What the clerk and the transformer do for a workflow of static works: run them all."""
    with db.begin() as conn:
        workflows.set_status(conn, wf_id, WorkflowStatus.RUNNING, "", now)
        for w in works.list_for(conn, wf_id):
            works.set_ready(conn, w.id, {})
            jobs.release_roots(conn, w.id, now)
            n = sum(w.counts.values())
            works.mark_running(conn, w.id, n, jobs.unpropagated(conn, w.id), now)


def submit_and_start(db: Database, template: Mapping[str, Any], now: float = T0) -> int:
    wf_id = submit(db, dict(template), base_dir=None, now=now)
    start(db, wf_id, now)
    return wf_id


def ids_by_name(db: Database, wf_id: int) -> dict[str, int]:
    """Job name → id (names are unique across works in these tests)."""
    with db.begin() as conn:
        return {j.name: j.id for j in jobs.list_for(conn, wf_id, limit=100_000)}


def rows(db: Database, wf_id: int) -> dict[int, Any]:
    with db.begin() as conn:
        return {
            r.id: r
            for r in conn.execute(sa.select(jobs_table).where(jobs_table.c.workflow_id == wf_id))
        }


def with_status(db: Database, wf_id: int, *status: str) -> set[int]:
    return {i for i, r in rows(db, wf_id).items() if r.status in status}


def claim(db: Database, owner: str = "carrier-a", now: float = T0, limit: int = 100_000) -> list:
    with db.begin() as conn:
        return dispatch.claim_ready(conn, owner, now, LEASE, limit)


def update(job_id: int, attempt: int, state: Any, at: float = T0, **kw: Any) -> JobUpdate:
    return JobUpdate(JobSpec.make_key(1, job_id, attempt), job_id, attempt, state, at, **kw)


def record(
    db: Database,
    updates: Sequence[JobUpdate],
    now: float = T0,
    delays: Mapping[int, RetryPolicy] | None = None,
) -> tuple[int, int]:
    with db.begin() as conn:
        done = dispatch.record(conn, updates, delays or {}, now)
        return done.finished, done.retried


def propagate_all(db: Database, now: float = T0, limit: int = 1000) -> release.Propagation:
    """Run the trigger's propagation until nothing is left; the sum of what it did."""
    total = release.Propagation()
    for _ in range(10_000):
        with db.begin() as conn:
            p = release.propagate(conn, now, limit)
        if not p.jobs:
            return total
        total.jobs += p.jobs
        total.released += p.released
        total.skipped += p.skipped
        total.remaining.update(p.remaining)
        total.workflows |= p.workflows
    raise AssertionError("propagation never ended")


# --- set-based release against core.dag --------------------------------------------------


def random_graph(
    rng: random.Random, n_jobs: int, n_layers: int, n_works: int
) -> tuple[dict[str, dict[str, list[str]]], dict[str, list[str]]]:
    """A layered DAG spread over works; returns the template graph and job → parent names."""
    layers: list[list[str]] = [[] for _ in range(n_layers)]
    for i in range(n_jobs):
        layers[min(i * n_layers // n_jobs, n_layers - 1)].append(f"j{i}")
    work_of = {f"j{i}": f"w{i % n_works}" for i in range(n_jobs)}
    parents: dict[str, list[str]] = {}
    for depth, layer in enumerate(layers):
        earlier = [j for lay in layers[:depth] for j in lay]
        previous = layers[depth - 1] if depth else []
        for job in layer:
            k = min(rng.choice([0, 1, 1, 2, 2, 3, 4]), len(earlier))
            picked = set(rng.sample(previous, min(k, len(previous), 2)) if previous else [])
            while len(picked) < k:
                picked.add(rng.choice(earlier))
            parents[job] = sorted(picked)
    graph: dict[str, dict[str, list[str]]] = {f"w{k}": {} for k in range(n_works)}
    for job, ps in parents.items():
        refs = [p if work_of[p] == work_of[job] else f"{work_of[p]}/{p}" for p in ps]
        graph[work_of[job]][job] = refs
    return graph, parents


@pytest.mark.parametrize(
    ("seed", "batch", "p_fail"),
    [(1, 1000, 0.0), (2, 7, 0.04), (3, 50, 0.1)],
    ids=["all-succeed", "small-batches", "failures"],
)
def test_release_matches_the_reference(db: Database, seed: int, batch: int, p_fail: float) -> None:
    rng = random.Random(seed)
    graph, parent_names = random_graph(rng, n_jobs=300, n_layers=12, n_works=3)
    wf_id = submit_and_start(db, static_template(graph))
    ids = ids_by_name(db, wf_id)
    assert len(ids) == 300
    parents = {ids[j]: [ids[p] for p in ps] for j, ps in parent_names.items()}
    children: dict[int, list[int]] = {i: [] for i in parents}
    for child, ps in parents.items():
        for p in ps:
            children[p].append(child)
    pending = {j: len(ps) for j, ps in parents.items()}

    roots = {j for j, n in pending.items() if n == 0}
    assert with_status(db, wf_id, "ready") == roots
    with db.begin() as conn:
        # the stored edges are the template's
        stored = set(conn.execute(sa.text("SELECT parent_id, child_id FROM job_edges")).all())
    assert stored == {(p, c) for c, ps in parents.items() for p in ps}

    succeeded: set[int] = set()
    failed: set[int] = set()
    in_flight: dict[int, int] = {}  # job id → attempt
    counted: Counter[int] = Counter()  # work id → ends passed on by propagate
    now = T0
    for _step in range(1000):
        now += 1.0
        claimed = claim(db, now=now)
        assert not {r.id for r in claimed} & set(in_flight), "a job was claimed twice"
        in_flight.update({r.id: r.attempt for r in claimed})
        if not in_flight:
            break
        chosen = rng.sample(sorted(in_flight), rng.randint(1, len(in_flight)))
        bad = {j for j in chosen if rng.random() < p_fail}
        good = [j for j in chosen if j not in bad]
        finished, retried = record(
            db,
            [update(j, in_flight[j], "failed" if j in bad else "succeeded", now) for j in chosen],
            now,
        )
        assert (finished, retried) == (len(chosen), 0)
        for j in chosen:
            del in_flight[j]
        done = propagate_all(db, now, batch)
        counted.update(done.remaining)

        # the reference: what core.dag says
        released = set(dag.release(pending, children, good))
        succeeded |= set(good)
        failed |= bad
        blocked = dag.blocked_by(children, failed, succeeded)
        assert with_status(db, wf_id, "ready") == released
        assert with_status(db, wf_id, "submitted") == set(in_flight)
        assert with_status(db, wf_id, "succeeded") == succeeded
        assert with_status(db, wf_id, "failed") == failed
        assert with_status(db, wf_id, "skipped") == blocked
        assert done.released == len(released)
        state = rows(db, wf_id)
        for j, r in state.items():
            if r.status == "waiting":
                assert r.pending_parents == pending[j], j
    else:
        pytest.fail("the DAG never finished")

    assert succeeded | failed | dag.blocked_by(children, failed, succeeded) == set(parents)
    assert not with_status(db, wf_id, "waiting", "ready", "submitted", "running")
    assert all(r.propagated for r in rows(db, wf_id).values())
    # every job's end was passed on to its work exactly once
    with db.begin() as conn:
        per_work = {w.id: sum(w.counts.values()) for w in works.list_for(conn, wf_id)}
    assert counted == per_work


def test_children_of_a_work_that_has_not_started_wait_for_it(db: Database) -> None:
    """A child whose parents are done is released when its work starts, not before."""
    wf_id = submit(
        db,
        static_template({"A": {"a1": [], "a2": []}, "B": {"b1": ["A/a1", "A/a2"], "b2": []}}),
        base_dir=None,
        now=T0,
    )
    with db.begin() as conn:
        workflows.set_status(conn, wf_id, WorkflowStatus.RUNNING, "", T0)
        ws = {w.name: w.id for w in works.list_for(conn, wf_id)}
        works.set_ready(conn, ws["A"], {})
        assert jobs.release_roots(conn, ws["A"], T0) == 2
        works.mark_running(conn, ws["A"], 2, 2, T0)
    ids = ids_by_name(db, wf_id)
    claimed = claim(db)
    assert {r.id for r in claimed} == {ids["a1"], ids["a2"]}
    record(db, [update(r.id, r.attempt, "succeeded") for r in claimed])
    assert propagate_all(db).released == 0  # B is not running yet
    state = rows(db, wf_id)
    assert (state[ids["b1"]].status, state[ids["b1"]].pending_parents) == ("waiting", 0)
    with db.begin() as conn:
        assert jobs.release_roots(conn, ws["B"], T0) == 2
    assert with_status(db, wf_id, "ready") == {ids["b1"], ids["b2"]}


def test_a_failure_skips_every_descendant_across_works(db: Database) -> None:
    graph = {
        "A": {"a1": [], "a2": ["a1"], "a3": []},
        "B": {"b1": ["A/a2"], "b2": ["b1", "A/a3"], "b3": ["A/a3"], "b4": ["b2", "b3"]},
    }
    wf_id = submit_and_start(db, static_template(graph))
    ids = ids_by_name(db, wf_id)
    outcome = {"a1": "failed", "a3": "succeeded"}
    claimed = claim(db)
    record(db, [update(r.id, r.attempt, outcome[r.name]) for r in claimed])
    done = propagate_all(db, limit=1)
    names = {v: k for k, v in ids.items()}
    got = {names[i]: r.status for i, r in rows(db, wf_id).items()}
    assert got == {
        "a1": "failed",
        "a2": "skipped",
        "a3": "succeeded",
        "b1": "skipped",
        "b2": "skipped",
        "b3": "ready",
        "b4": "skipped",
    }
    children: dict[int, list[int]] = {i: [] for i in ids.values()}
    for job_list in graph.values():
        for job, refs in job_list.items():
            for ref in refs:
                children[ids[ref.rpartition("/")[2]]].append(ids[job])
    expected = dag.blocked_by(children, [ids["a1"]], [ids["a3"]])
    assert with_status(db, wf_id, "skipped") == expected
    assert done.skipped == len(expected)
    skipped = rows(db, wf_id)[ids["b4"]]
    assert skipped.error == "a parent job did not succeed"
    assert skipped.finished_at == T0
    # each work is told how many of its jobs ended: A all 3, B 3 of 4 (b3 is ready)
    with db.begin() as conn:
        work_ids = {w.name: w.id for w in works.list_for(conn, wf_id)}
    assert done.remaining == Counter({work_ids["A"]: 3, work_ids["B"]: 3})


# --- claims ---------------------------------------------------------------------------


def wide(n: int) -> dict[str, dict[str, list[str]]]:
    return {"w": {f"j{i}": [] for i in range(n)}}


def test_claims_take_each_job_once(db: Database) -> None:
    wf_id = submit_and_start(db, static_template(wide(40)))
    first = claim(db, "carrier-a", limit=15)
    second = claim(db, "carrier-b", limit=100)
    assert len(first) == 15
    assert len(second) == 25
    assert not {r.id for r in first} & {r.id for r in second}
    state = rows(db, wf_id)
    assert {state[r.id].owner for r in first} == {"carrier-a"}
    assert {state[r.id].owner for r in second} == {"carrier-b"}
    assert all(r.status == "submitted" and r.attempt == 1 for r in state.values())
    assert all(r.lease_until == T0 + LEASE and r.submitted_at == T0 for r in state.values())
    assert claim(db, "carrier-c") == []


def test_concurrent_claims_never_share_a_job(db: Database) -> None:
    n_jobs, n_threads = 300, 4
    wf_id = submit_and_start(db, static_template(wide(n_jobs)))
    got: dict[str, list[int]] = {f"carrier-{k}": [] for k in range(n_threads)}
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def carrier(owner: str) -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(500):
                batch = claim(db, owner, limit=7)
                if not batch and not with_status(db, wf_id, "ready"):
                    return
                got[owner].extend(r.id for r in batch)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=carrier, args=(o,)) for o in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a claiming thread hung"
    assert not errors, errors
    every = [j for ids in got.values() for j in ids]
    assert len(every) == len(set(every)) == n_jobs
    state = rows(db, wf_id)
    for owner, ids in got.items():
        assert all(state[j].owner == owner and state[j].attempt == 1 for j in ids)


def test_only_jobs_of_running_workflows_are_claimed(db: Database) -> None:
    wf_id = submit_and_start(db, static_template(wide(3)))
    with db.begin() as conn:
        workflows.set_status(conn, wf_id, WorkflowStatus.SUSPENDED, "", T0)
    assert claim(db) == []
    with db.begin() as conn:
        workflows.set_status(conn, wf_id, WorkflowStatus.RUNNING, "", T0)
    assert len(claim(db)) == 3


# --- results, leases, retries ----------------------------------------------------------


def test_running_then_succeeded_is_recorded(db: Database) -> None:
    wf_id = submit_and_start(db, static_template(wide(1)))
    (r,) = claim(db)
    record(db, [update(r.id, 1, "running", T0 + 1)])
    got = rows(db, wf_id)[r.id]
    assert (got.status, got.started_at) == ("running", T0 + 1)
    finished, retried = record(
        db, [update(r.id, 1, "succeeded", T0 + 2, exit_code=0, result={"x": [1, 2]}, log_uri="L")]
    )
    assert (finished, retried) == (1, 0)
    got = rows(db, wf_id)[r.id]
    assert (got.status, got.exit_code, got.result, got.log_uri) == (
        "succeeded",
        0,
        {"x": [1, 2]},
        "L",
    )
    assert (got.finished_at, got.owner, got.lease_until, got.propagated) == (
        T0 + 2,
        None,
        None,
        False,
    )


def test_expired_leases_are_reclaimed_with_an_extra_attempt(db: Database) -> None:
    wf_id = submit_and_start(db, static_template(wide(3)))
    first = claim(db, "carrier-dead", now=T0)
    assert len(first) == 3
    with db.begin() as conn:
        dispatch.renew(conn, "carrier-dead", T0 + 20, LEASE)  # it was alive until T0 + 20
        assert dispatch.reclaim_lost(conn, T0 + 20 + LEASE - 1) == 0
        assert dispatch.reclaim_lost(conn, T0 + 20 + LEASE + 1) == 3
    state = rows(db, wf_id)
    assert all(
        (r.status, r.owner, r.lease_until, r.attempt, r.max_attempts) == ("ready", None, None, 1, 2)
        for r in state.values()
    )
    assert all(r.error == "its agent stopped; run again" for r in state.values())

    now = T0 + 100
    second = claim(db, "carrier-new", now=now)
    assert {r.id for r in second} == {r.id for r in first}
    assert {r.attempt for r in second} == {2}
    # the dead carrier's late reports of attempt 1 change nothing
    record(db, [update(r.id, 1, "succeeded", now) for r in first], now)
    record(db, [update(r.id, 1, "failed", now, error="late") for r in first], now)
    assert with_status(db, wf_id, "submitted") == {r.id for r in first}
    # the live attempt is recorded
    record(db, [update(r.id, 2, "succeeded", now) for r in second], now)
    assert with_status(db, wf_id, "succeeded") == {r.id for r in first}


def test_lost_job_whose_cancel_was_asked_is_cancelled_not_rerun(db: Database) -> None:
    wf_id = submit_and_start(db, static_template(wide(2)))
    claimed = claim(db, "carrier-dead")
    with db.begin() as conn:
        jobs.cancel_workflow(conn, wf_id, T0)
        assert dispatch.reclaim_lost(conn, T0 + LEASE + 1) == 0
    state = rows(db, wf_id)
    assert {(state[r.id].status, state[r.id].error) for r in claimed} == {
        ("cancelled", "cancelled")
    }


def test_updates_for_cancelled_jobs_are_ignored(db: Database) -> None:
    wf_id = submit_and_start(db, static_template(wide(3)))
    claimed = claim(db)
    with db.begin() as conn:
        jobs.cancel_workflow(conn, wf_id, T0)
        assert sorted(j for j, _, _ in dispatch.to_cancel(conn, "carrier-a")) == sorted(
            r.id for r in claimed
        )
        dispatch.mark_cancelled(conn, [r.id for r in claimed], T0 + 1)
        assert dispatch.to_cancel(conn, "carrier-a") == []
    record(db, [update(r.id, r.attempt, "succeeded", T0 + 2) for r in claimed], T0 + 2)
    record(db, [update(r.id, r.attempt, "running", T0 + 2) for r in claimed], T0 + 2)
    state = rows(db, wf_id)
    assert all((r.status, r.finished_at) == ("cancelled", T0 + 1) for r in state.values())


def test_ignored_updates_are_not_counted(db: Database) -> None:
    wf_id = submit_and_start(db, static_template(wide(2), retries=3))
    claimed = claim(db)
    with db.begin() as conn:
        dispatch.mark_cancelled(conn, [claimed[0].id], T0)
    # attempt 1 of job 0 was cancelled, attempt 7 of job 1 never existed
    got = record(
        db,
        [update(claimed[0].id, 1, "succeeded"), update(claimed[1].id, 7, "failed")],
    )
    assert rows(db, wf_id)[claimed[1].id].status == "submitted"
    assert got == (0, 0)


def test_failed_attempts_back_off_then_fail(db: Database) -> None:
    wf_id = submit_and_start(db, static_template({"w": {"j": [], "k": ["j"]}}, retries=2))
    ids = ids_by_name(db, wf_id)
    j = ids["j"]
    delay = 5.0
    policy = {j: RetryPolicy(initial_interval=delay, maximum_attempts=3)}

    (r,) = claim(db, now=T0)
    assert (r.id, r.attempt) == (j, 1)
    assert record(db, [update(j, 1, "failed", T0, exit_code=2)], T0, policy) == (0, 1)
    got = rows(db, wf_id)[j]
    assert (got.status, got.not_before, got.ready_at) == ("ready", T0 + delay, T0 + delay)
    assert (got.exit_code, got.finished_at, got.owner) == (2, None, None)
    assert propagate_all(db, T0).jobs == 0  # a job waiting for its retry has not ended
    assert claim(db, now=T0 + delay - 0.001) == []
    (r,) = claim(db, now=T0 + delay)
    assert r.attempt == 2

    t1 = T0 + 100
    assert record(db, [update(j, 2, "failed", t1)], t1, policy) == (0, 1)
    assert rows(db, wf_id)[j].not_before == t1 + 2 * delay  # doubles each attempt
    assert claim(db, now=t1 + 2 * delay - 0.001) == []
    (r,) = claim(db, now=t1 + 2 * delay)
    assert r.attempt == 3

    t2 = T0 + 200
    assert record(db, [update(j, 3, "failed", t2, error="boom")], t2, policy) == (1, 0)
    got = rows(db, wf_id)[j]
    assert (got.status, got.finished_at, got.error, got.attempt) == ("failed", t2, "boom", 3)
    assert claim(db, now=t2 + 10_000) == []
    propagate_all(db, t2)
    assert rows(db, wf_id)[ids["k"]].status == "skipped"


def test_reopen_failed_gives_fresh_attempts_and_rewaits_skipped(db: Database) -> None:
    graph = {"w": {"a": [], "b": ["a"], "c": ["b"], "d": []}}
    wf_id = submit_and_start(db, static_template(graph))
    ids = ids_by_name(db, wf_id)
    claimed = claim(db)
    record(db, [update(r.id, 1, "failed" if r.id == ids["a"] else "succeeded") for r in claimed])
    propagate_all(db)
    assert with_status(db, wf_id, "skipped") == {ids["b"], ids["c"]}
    with db.begin() as conn:
        (work_id,) = [w.id for w in works.list_for(conn, wf_id)]
        reopened = jobs.reopen_failed(conn, wf_id, {work_id: 2}, [work_id])
    assert reopened == Counter({work_id: 3})
    state = rows(db, wf_id)
    a, b, c = state[ids["a"]], state[ids["b"]], state[ids["c"]]
    assert (a.status, a.attempt, a.max_attempts, a.propagated, a.error) == (
        "ready",
        1,
        3,
        False,
        None,
    )
    assert (b.status, b.pending_parents) == ("waiting", 1)
    assert (c.status, c.pending_parents) == ("waiting", 1)
    assert state[ids["d"]].status == "succeeded"
    (r,) = claim(db, now=T0 + 1)
    assert (r.id, r.attempt) == (ids["a"], 2)
    record(db, [update(r.id, 2, "succeeded", T0 + 1)], T0 + 1)
    propagate_all(db, T0 + 1)
    assert with_status(db, wf_id, "ready") == {ids["b"]}


def _names(db: Database, wf_id: int, ids: Iterable[int]) -> set[str]:
    names = {v: k for k, v in ids_by_name(db, wf_id).items()}
    return {names[i] for i in ids}


def test_insert_static_writes_parents_first_in_large_batches(db: Database, tmp_path: Path) -> None:
    """More jobs than one insert batch, with parents in the previous batch."""
    n = graph.BATCH + 50
    chain = {f"j{i}": ([f"j{i - 1}"] if i else []) for i in range(n)}
    wf_id = submit(db, static_template({"w": chain}), base_dir=tmp_path, now=T0)
    state = rows(db, wf_id)
    assert len(state) == n
    assert Counter(r.pending_parents for r in state.values()) == Counter({1: n - 1, 0: 1})
    with db.begin() as conn:
        edges = conn.execute(sa.text("SELECT count(*) FROM job_edges")).scalar_one()
    assert edges == n - 1
    assert _names(db, wf_id, [i for i, r in state.items() if r.pending_parents == 0]) == {"j0"}
