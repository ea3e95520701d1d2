"""The HPO agent end to end on SQLite and PostgreSQL: trials as jobs, asynchronous slots,
failures, pruning, segments, custom generators, abort."""

from __future__ import annotations

import math
import random
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
from orchid.store import trials as trial_rows
from orchid.store.db import Database
from orchid.store.tables import studies as studies_table
from tests.engine.enginekit import Engine, EngineFactory, jobs_of, works_of

HERE = Path(__file__).resolve().parents[1] / "generators"


class FunctionExecutor:
    """Runs each job as ``f(args)`` in the test process: succeeded with its return value,
    failed if it raises. Jobs stay running until ``step()`` lets ``per_step`` of them end
    (None: at once), so tests can watch slots free one at a time."""

    name = "function"
    durable = False

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
                self.updates.append(
                    JobUpdate(
                        s.key, s.job_id, s.attempt, "failed", now, exit_code=1, error=str(exc)
                    )
                )
            else:
                self.updates.append(
                    JobUpdate(
                        s.key, s.job_id, s.attempt, "succeeded", now, exit_code=0, result=result
                    )
                )

    def poll(self) -> list[JobUpdate]:
        out, self.updates = self.updates, []
        return out

    def cancel(self, keys: Sequence[str]) -> None:
        for s in [s for s in self.running if s.key in keys]:
            self.running.remove(s)
            self.cancelled.append(s.key)
            self.updates.append(
                JobUpdate(s.key, s.job_id, s.attempt, "failed", time.time(), error="cancelled")
            )

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


def trials(db: Database, wf_id: int) -> list[trial_rows.TrialRow]:
    (study,) = study_rows(db, wf_id)
    with db.engine.connect() as conn:
        return trial_rows.trials_of(conn, study.id)


def test_trials_run_as_jobs_and_the_best_comes_out(
    make_engine: EngineFactory, db: Database
) -> None:
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


def test_failed_trials_are_retried_then_recorded_and_the_study_goes_on(
    make_engine: EngineFactory, db: Database
) -> None:
    attempts: Counter[float] = Counter()

    def flaky(args: dict[str, Any]) -> Any:
        attempts[args["x"]] += 1
        if args["x"] < 0:  # always fails
            raise RuntimeError("diverged")
        if attempts[args["x"]] == 1 and args["y"] % 2:  # fails once: the retry succeeds
            raise RuntimeError("flaky")
        if args["y"] == 5:
            return {"accuracy": 1.0}  # no loss in the result: recorded as failed
        return quadratic(args)

    t = template(strategy="random")
    t["works"][0]["retries"] = 1
    t["works"][0]["retry_delay"] = 0
    eng = make_engine(FunctionExecutor(flaky))
    wf_id, wf = eng.run(t)
    assert wf.status == "succeeded", wf.message
    ts = trials(db, wf_id)
    assert len(ts) == 12
    by_status = Counter(t.status for t in ts)
    assert by_status["complete"] == sum(1 for t in ts if t.params["x"] >= 0 and t.params["y"] != 5)
    for t in ts:
        if t.params["x"] < 0:
            assert t.status == "failed" and "diverged" in (t.error or "")
        elif t.params["y"] == 5:
            assert t.status == "failed" and "no 'loss'" in (t.error or "")
    assert by_status["failed"] > 0


def test_a_study_with_no_completed_trial_fails_its_work(
    make_engine: EngineFactory, db: Database
) -> None:
    def broken(args: dict[str, Any]) -> Any:
        raise RuntimeError("no GPU")

    eng = make_engine(FunctionExecutor(broken))
    wf_id, wf = eng.run(template(max_trials=4, parallel=2))
    assert wf.status == "failed"
    assert "no trial of the study completed" in wf.message
    (study,) = study_rows(db, wf_id)
    assert study.status == "failed" and study.summary is not None
    assert study.summary["failed"] == 4 and study.summary["best"] is None


def test_the_same_seed_gives_the_same_trials(make_engine: EngineFactory, db: Database) -> None:
    eng = make_engine(FunctionExecutor(quadratic))
    runs = []
    for seed in (5, 5, 6):
        wf_id, wf = eng.run(
            template(parallel=1, max_trials=6, seed=seed, options={"n_startup_trials": 3})
        )
        assert wf.status == "succeeded"
        runs.append([dict(t.params) for t in trials(db, wf_id)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def settle(eng: Engine) -> None:
    """Run rounds until the agents have nothing left to do (bounded)."""
    idle = 0
    for _ in range(2_000):
        idle = idle + 1 if not eng.runner.run_once() else 0
        if idle == 3:
            return
    pytest.fail("the agents never went idle")


def run_in_order(eng: Engine, ex: FunctionExecutor, raw: dict[str, Any], order: str) -> int:
    """Run a study ending its trials in the given order: ``oldest`` first one at a time,
    ``newest`` first one at a time, or ``shuffled`` (random sets of the running ones)."""
    pick = random.Random(42)
    wf_id = eng.submit(raw)
    while True:
        settle(eng)
        if not ex.running:
            break
        if order == "oldest":
            ex.step(1)
        else:
            if order == "newest":
                ex.running.reverse()
            else:
                pick.shuffle(ex.running)
            ex.step(1 if order == "newest" else pick.randint(1, len(ex.running)))
    assert eng.drain(wf_id).status == "succeeded"
    return wf_id


@pytest.mark.parametrize("strategy", ["tpe", "random", "nevergrad", "cmaes"])
def test_a_seeded_study_repeats_whatever_order_its_trials_end_in(
    make_engine: EngineFactory, db: Database, strategy: str
) -> None:
    """Trial n is proposed from trials up to n - parallel with their results and the
    ones after as running, once those have ended: the same points in every run."""
    raw = template(parallel=3, max_trials=10, seed=11, strategy=strategy)
    if strategy == "tpe":
        raw["works"][0]["hpo"]["options"] = {"n_startup_trials": 3}
    runs = []
    for order in ("oldest", "newest", "shuffled"):
        ex = FunctionExecutor(quadratic, per_step=1)
        wf_id = run_in_order(make_engine(ex), ex, raw, order)
        ts = trials(db, wf_id)
        (study,) = study_rows(db, wf_id)
        assert study.summary is not None
        runs.append(([(t.number, dict(t.params)) for t in ts], study.summary["best"]))
        assert len(ts) == 10 and ex.max_running <= 3
    assert runs[0] == runs[1] == runs[2]


def test_a_seeded_study_waits_for_its_oldest_trial(
    make_engine: EngineFactory, db: Database
) -> None:
    """The price of repeating: a trial still running holds back the one `parallel` after
    it, while an unseeded study fills a freed slot at once."""
    for seed, expected in ((3, 3), (None, 5)):
        ex = FunctionExecutor(quadratic, per_step=1)
        eng = make_engine(ex)
        wf_id = eng.submit(template(parallel=3, max_trials=8, seed=seed))
        settle(eng)
        assert len(ex.submitted) == 3
        ex.running = ex.running[::-1]
        ex.step(2)  # trials 2 and 1 end; trial 0 still runs
        settle(eng)
        assert len(ex.submitted) == expected, seed
        ex.per_step = None
        ex.step(100)
        assert eng.drain(wf_id).status == "succeeded"


def test_segments_share_the_slots_fairly(make_engine: EngineFactory, db: Database) -> None:
    """Three studies in one request, 4 slots: each segment keeps at least one trial
    running, none ever more than two, all four slots busy until a segment is done."""

    def by_segment(args: dict[str, Any]) -> dict[str, float]:
        return {"loss": quadratic(args)["loss"] * args["scale"]}

    ex = FunctionExecutor(by_segment, per_step=1)
    t = template(
        strategy="random",
        max_trials=5,
        parallel=4,
        segments={"pions": {"scale": 1}, "photons": {"scale": 2}, "electrons": {"scale": 3}},
    )
    eng = make_engine(ex)
    wf_id = eng.submit(t)
    seen: list[Counter[str]] = []
    while len(ex.submitted) < 15:
        eng.run_until(wf_id, lambda: len(ex.running) == 4 or len(ex.submitted) == 15)
        seen.append(Counter(s.job_name.rsplit("-", 1)[0] for s in ex.running))
        ex.step()
    ex.step(100)
    wf = eng.drain(wf_id)
    assert wf.status == "succeeded", wf.message
    full = [c for c in seen if sum(c.values()) == 4]
    assert full and all(max(c.values()) <= 2 and len(c) == 3 for c in full[:5])
    ts = trials(db, wf_id)
    assert Counter(t.segment for t in ts) == {"pions": 5, "photons": 5, "electrons": 5}
    assert all(t.status == "complete" for t in ts)
    (study,) = study_rows(db, wf_id)
    assert study.summary is not None
    assert set(study.summary["segments"]) == {"pions", "photons", "electrons"}
    jobs = [j for j in jobs_of(db, wf_id) if j.work_name == "tune"]
    assert {j.args["scale"] for j in jobs if j.name.startswith("photons-")} == {2}


def test_median_pruning_stops_bad_trials(
    make_engine: EngineFactory, db: Database, tmp_path: Path
) -> None:
    """Trials report intermediate values through their progress file (real processes);
    the pruner stops those worse than the median and the study records them pruned."""
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "home" / "learner.py").write_text(
        "import time\n"
        "from orchid.hpo import trial\n"
        "def fit(x: float, y: int) -> dict:\n"
        "    loss = 0.0\n"
        "    for step in range(8):\n"
        "        loss = abs(x) + 1.0 / (step + 1)\n"
        "        trial.report(loss, step)\n"
        "        time.sleep(0.15)\n"
        "    return {'loss': loss}\n"
    )
    t = template(
        strategy="random",
        max_trials=10,
        parallel=2,
        pruner={"kind": "median", "min_trials": 2, "warmup_steps": 1},
    )
    t["works"][0]["function"] = "learner:fit"
    eng = make_engine("local", workers=2, lease_seconds=30)
    wf_id, wf = eng.run(t, deadline_s=120)
    assert wf.status == "succeeded", wf.message
    ts = trials(db, wf_id)
    pruned = [t for t in ts if t.status == "pruned"]
    complete = [t for t in ts if t.status == "complete"]
    assert pruned and complete
    assert all(t.intermediate for t in pruned)
    assert all(len(t.intermediate) == 8 for t in complete)
    jobs = {j.id: j for j in jobs_of(db, wf_id)}
    # stopped; one pruned at its last step may have ended on its own before the stop came
    ended = Counter(str(jobs[t.job_id].status) for t in pruned if t.job_id)
    assert ended["cancelled"] >= 1 and set(ended) <= {"cancelled", "succeeded"}


def test_a_custom_generator_runs_as_a_job(make_engine: EngineFactory, db: Database) -> None:
    t = template(
        strategy="custom",
        generator=[sys.executable, str(HERE / "random_generator.py")],
        max_trials=7,
        parallel=3,
    )
    del t["works"][0]["function"]
    code = "import json, sys; print(json.dumps({'loss': (float(sys.argv[1]) - 0.3) ** 2}))"
    t["works"][0]["command"] = [sys.executable, "-c", code, "{x}"]
    eng = make_engine("local", workers=3)
    wf_id, wf = eng.run(t, deadline_s=120)
    assert wf.status == "succeeded", wf.message
    ts = trials(db, wf_id)
    assert len(ts) == 7
    names = [j.name for j in jobs_of(db, wf_id) if j.work_name == "tune"]
    assert any(n.startswith("gen:") for n in names)


def test_abort_ends_the_study_and_its_trials(make_engine: EngineFactory, db: Database) -> None:
    from orchid.store import commands

    ex = FunctionExecutor(quadratic, per_step=1)
    eng = make_engine(ex)
    wf_id = eng.submit(template())
    eng.run_until(wf_id, lambda: len(ex.running) == 3)
    with db.begin() as conn:
        commands.add(conn, wf_id, "abort", time.time())
    wf = eng.drain(wf_id)
    assert wf.status == "cancelled"
    eng.run_until(wf_id, lambda: study_rows(db, wf_id)[0].status == "cancelled")
    assert {t.status for t in trials(db, wf_id)} == {"failed"}


def test_a_study_survives_a_restart_of_its_agent(make_engine: EngineFactory, db: Database) -> None:
    """Everything is in the database: a new engine (new generator agent, new executor)
    carries a half-done study on."""
    first = FunctionExecutor(quadratic, per_step=1)
    eng = make_engine(first, lease_seconds=2)
    wf_id = eng.submit(template(max_trials=8, parallel=2))
    eng.run_until(wf_id, lambda: len(first.running) == 2)
    first.step(1)
    eng.run_until(wf_id, lambda: len(first.submitted) == 3)
    # the first engine dies; its jobs' leases run out and they run again elsewhere
    with db.begin() as conn:
        conn.execute(sa.update(studies_table).values(lease_owner=None, lease_until=None))
        conn.execute(
            sa.text("UPDATE jobs SET lease_until = 0 WHERE status IN ('submitted', 'running')")
        )
    second = make_engine(FunctionExecutor(quadratic))
    wf = second.drain(wf_id)
    assert wf.status == "succeeded", wf.message
    ts = trials(db, wf_id)
    assert [t.number for t in ts] == list(range(8))
    assert all(t.status == "complete" for t in ts)


def test_suspend_holds_new_trials_and_resume_goes_on(
    make_engine: EngineFactory, db: Database
) -> None:
    from orchid.store import commands

    ex = FunctionExecutor(quadratic, per_step=1)
    eng = make_engine(ex)
    wf_id = eng.submit(template(max_trials=6, parallel=2))
    eng.run_until(wf_id, lambda: len(ex.running) == 2)
    with db.begin() as conn:
        commands.add(conn, wf_id, "suspend", time.time())
    eng.run_until(wf_id, lambda: str(eng_status(db, wf_id)) == "suspended")
    ex.step(2)
    for _ in range(50):
        eng.runner.run_once()
    assert len(ex.submitted) == 2  # nothing new while suspended
    assert {t.status for t in trials(db, wf_id)} == {"complete"}
    with db.begin() as conn:
        commands.add(conn, wf_id, "resume", time.time())
    ex.per_step = None
    wf = eng.drain(wf_id)
    ex.step(100)
    wf = eng.drain(wf_id)
    assert wf.status == "succeeded", wf.message
    assert len(trials(db, wf_id)) == 6


def eng_status(db: Database, wf_id: int) -> str:
    from tests.engine.enginekit import workflow

    return str(workflow(db, wf_id).status)


def test_finish_stops_proposing_and_lets_running_trials_end(
    make_engine: EngineFactory, db: Database
) -> None:
    from orchid.store import commands

    ex = FunctionExecutor(quadratic, per_step=1)
    eng = make_engine(ex)
    wf_id = eng.submit(template(max_trials=10, parallel=3))
    eng.run_until(wf_id, lambda: len(ex.running) == 3)
    with db.begin() as conn:
        commands.add(conn, wf_id, "finish", time.time())
    for _ in range(20):
        eng.runner.run_once()
    ex.step(100)
    wf = eng.drain(wf_id)
    assert wf.status == "succeeded", wf.message
    ts = trials(db, wf_id)
    assert len(ts) == 3 and all(t.status == "complete" for t in ts)
