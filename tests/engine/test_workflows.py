"""End to end through the four agents (clerk, transformer, carrier, trigger) on both databases.

The null executor (every job succeeds at once) drives the tests of the engine's logic; the
local executor (real processes) those where a payload's outcome, a retry, a cancel or a
suspension of running jobs matters; ``enginekit.ScriptedExecutor`` (instant, but fails or
holds jobs as their args say) where an interleaving must be exact. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from orchid.core.model import Work
from orchid.store import commands
from orchid.store.db import Database
from tests.engine.enginekit import (
    EngineFactory,
    ScriptedExecutor,
    TickingClock,
    edges_of,
    events_of,
    jobs_of,
    loops_of,
    python_cmd,
    workflow,
    works_of,
)

SH_EXIT = ["sh", "-c", "exit {code}"]


def by_name(ws: list[Work]) -> dict[str, Work]:
    """The latest iteration of each work, by name."""
    out: dict[str, Work] = {}
    for w in ws:
        if w.name not in out or w.iteration > out[w.name].iteration:
            out[w.name] = w
    return out


def statuses(db: Database, wf_id: int) -> dict[str, str]:
    return {n: str(w.status) for n, w in by_name(works_of(db, wf_id)).items()}


def job_statuses(db: Database, wf_id: int) -> dict[str, str]:
    return {f"{j.work_name}/{j.name}": str(j.status) for j in jobs_of(db, wf_id)}


def add_command(db: Database, wf_id: int, kind: Any) -> int:
    with db.begin() as conn:
        return commands.add(conn, wf_id, kind, time.time())


def command_state(db: Database, command_id: int) -> tuple[str, str]:
    with db.begin() as conn:
        got = commands.get(conn, command_id)
    assert got is not None
    return got


# --- graphs of works --------------------------------------------------------------------


def test_linear_chain_runs_in_order_and_writes_events(make_engine: EngineFactory) -> None:
    e = make_engine()
    template = {
        "name": "chain",
        "works": [
            {"name": "a", "noop": True},
            {"name": "b", "noop": True, "after": ["a"]},
            {"name": "c", "noop": True, "after": ["b"]},
        ],
    }
    wf_id, wf = e.run(template)

    assert wf.status == "succeeded", wf.message
    assert wf.finished_at is not None
    ws = by_name(works_of(e.db, wf_id))
    assert {n: str(w.status) for n, w in ws.items()} == dict.fromkeys("abc", "succeeded")
    assert all(w.n_jobs == 1 and w.counts == {"succeeded": 1} for w in ws.values())

    evs = events_of(e.db, wf_id)
    kinds = [ev["kind"] for ev in evs]
    assert [k for k in kinds if k.startswith("workflow.")] == [
        "workflow.submitted",
        "workflow.running",
        "workflow.succeeded",
    ]
    assert [ev["id"] for ev in evs] == sorted(ev["id"] for ev in evs)

    def position(kind: str, work: str) -> int:
        found = [
            i
            for i, ev in enumerate(evs)
            if ev["kind"] == kind and ev["data"].get("work_id") == ws[work].id
        ]
        assert len(found) == 1, (kind, work, kinds)
        return found[0]

    for name in "abc":
        assert position("work.ready", name) < position("work.running", name)
        assert position("work.running", name) < position("work.succeeded", name)
    # a work becomes ready only after the one it waits for has succeeded
    assert position("work.succeeded", "a") < position("work.ready", "b")
    assert position("work.succeeded", "b") < position("work.ready", "c")
    assert position("work.succeeded", "c") < kinds.index("workflow.succeeded")


SWEEP = python_cmd(
    "import json, os; a = json.loads(os.environ['ORCHID_ARGS']); "
    "print(json.dumps(dict(x=a['x'], y=a['y'], p=a['x'] * a['y'])))"
)
MERGE = python_cmd(
    "import json, os; a = json.loads(os.environ['ORCHID_ARGS']); "
    "print(json.dumps(dict(total=sum(v['p'] for v in a['values']), n=len(a['values']))))"
)


def test_map_sweep_fans_in_to_a_merge_that_reads_the_results(make_engine: EngineFactory) -> None:
    e = make_engine("local", workers=4)
    template = {
        "name": "sweep",
        "works": [
            {
                "name": "sweep",
                "command": SWEEP,
                "map": {"product": {"x": [1, 2, 3], "y": [10, 20]}},
            },
            {
                "name": "merge",
                "command": MERGE,
                "after": ["sweep"],
                "parameters": {"values": "${works.sweep.results}", "label": "run-${params.tag}"},
            },
        ],
        "parameters": {"tag": "t1"},
    }
    wf_id, wf = e.run(template)

    assert wf.status == "succeeded", wf.message
    js = jobs_of(e.db, wf_id)
    sweep = [j for j in js if j.work_name == "sweep"]
    assert sorted((j.args["x"], j.args["y"]) for j in sweep) == [
        (x, y) for x in (1, 2, 3) for y in (10, 20)
    ]
    assert all(
        j.status == "succeeded" and j.result["p"] == j.args["x"] * j.args["y"] for j in sweep
    )
    (merge,) = [j for j in js if j.work_name == "merge"]
    expected = sorted((j.result for j in sweep), key=lambda r: (r["x"], r["y"]))
    assert sorted(merge.args["values"], key=lambda r: (r["x"], r["y"])) == expected
    assert merge.args["label"] == "run-t1"
    assert merge.result == {"total": sum(r["p"] for r in expected), "n": 6}
    # the merge started only once every sweep job had ended
    assert merge.started_at is not None
    assert all(j.finished_at is not None and j.finished_at <= merge.started_at for j in sweep)


def test_map_sweep_with_null_executor_passes_one_result_per_job(
    make_engine: EngineFactory,
) -> None:
    e = make_engine()
    template = {
        "name": "sweep",
        "works": [
            {"name": "sweep", "noop": True, "map": {"zip": {"a": [1, 2, 3, 4], "b": [5, 6, 7, 8]}}},
            {
                "name": "merge",
                "noop": True,
                "after": ["sweep"],
                "parameters": {"values": "${works.sweep.results}", "n": "${works.sweep.counts}"},
            },
        ],
    }
    wf_id, wf = e.run(template)
    assert wf.status == "succeeded", wf.message
    js = jobs_of(e.db, wf_id)
    assert sorted((j.args["a"], j.args["b"]) for j in js if j.work_name == "sweep") == [
        (1, 5),
        (2, 6),
        (3, 7),
        (4, 8),
    ]
    (merge,) = [j for j in js if j.work_name == "merge"]
    assert merge.args["values"] == [None] * 4
    assert merge.args["n"] == {"succeeded": 4}


@pytest.mark.parametrize("flag", [False, True])
def test_conditions_choose_the_branch(make_engine: EngineFactory, flag: bool) -> None:
    e = make_engine()
    template = {
        "name": "branch",
        "parameters": {"flag": False},
        "works": [
            {"name": "A", "noop": True},
            {"name": "B", "noop": True, "after": ["A"], "when": "works.A.status == 'succeeded'"},
            {"name": "C", "noop": True, "after": ["A"], "when": "params.flag"},
            {"name": "D", "noop": True, "after": ["C"]},
        ],
    }
    wf_id, wf = e.run(template, params={"flag": flag})

    assert wf.status == "succeeded", wf.message
    ws = by_name(works_of(e.db, wf_id))
    assert ws["A"].status == "succeeded"
    assert ws["B"].status == "succeeded"
    if flag:
        assert ws["C"].status == ws["D"].status == "succeeded"
        return
    assert ws["C"].status == "skipped"
    assert ws["C"].message == "condition `params.flag` is false"
    assert ws["C"].n_jobs == 0
    assert ws["D"].status == "skipped"
    assert "C skipped" in ws["D"].message
    assert {j.work_name for j in jobs_of(e.db, wf_id)} == {"A", "B"}
    skipped = [ev for ev in events_of(e.db, wf_id) if ev["kind"] == "work.skipped"]
    assert [ev["data"]["work_id"] for ev in skipped] == [ws["C"].id, ws["D"].id]
    assert skipped[0]["data"]["message"] == "condition `params.flag` is false"


def test_loop_repeats_until_its_condition_and_updates_variables(
    make_engine: EngineFactory,
) -> None:
    e = make_engine()
    template = {
        "name": "loop",
        "works": [
            {"name": "step", "noop": True, "parameters": {"x": "${loop.vars.x}"}},
            {
                "name": "report",
                "noop": True,
                "after": ["converge"],
                "parameters": {"x": "${loops.converge.vars.x}", "n": "${loops.converge.iteration}"},
            },
        ],
        "loops": [
            {
                "name": "converge",
                "works": ["step"],
                "until": "loop.iteration >= 3",
                "max_iterations": 10,
                "variables": {"x": 1},
                "next": {"x": "loop.vars.x * 2"},
            }
        ],
    }
    wf_id, wf = e.run(template)

    assert wf.status == "succeeded", wf.message
    steps = sorted(
        (w for w in works_of(e.db, wf_id) if w.name == "step"), key=lambda w: w.iteration
    )
    assert [w.iteration for w in steps] == [0, 1, 2, 3]
    assert all(w.status == "succeeded" for w in steps)
    loop = loops_of(e.db, wf_id)["converge"]
    assert loop["status"] == "succeeded"
    assert loop["iteration"] == 3
    assert loop["vars"] == {"x": 8}
    js = jobs_of(e.db, wf_id)
    assert [j.args["x"] for j in js if j.work_name == "step"] == [1, 2, 4, 8]
    (report,) = [j for j in js if j.work_name == "report"]
    assert report.args == {"x": 8, "n": 3}
    loop_events = [ev["data"] for ev in events_of(e.db, wf_id) if ev["kind"] == "loop"]
    assert [(d["status"], d["iteration"]) for d in loop_events] == [
        ("running", 0),
        ("running", 1),
        ("running", 2),
        ("running", 3),
        ("succeeded", 3),
    ]


def test_loop_that_never_converges_stops_at_max_iterations(make_engine: EngineFactory) -> None:
    e = make_engine()
    template = {
        "name": "loop",
        "works": [{"name": "step", "noop": True}],
        "loops": [
            {
                "name": "forever",
                "works": ["step"],
                "until": "false",
                "max_iterations": 3,
                "on_max_iterations": "fail",
            }
        ],
    }
    wf_id, wf = e.run(template)
    assert wf.status == "failed"
    assert "max_iterations=3" in wf.message
    assert sorted(w.iteration for w in works_of(e.db, wf_id)) == [0, 1, 2]
    assert loops_of(e.db, wf_id)["forever"]["status"] == "failed"


STEP = python_cmd(
    "import json, os; a = json.loads(os.environ['ORCHID_ARGS']); "
    "print(json.dumps(dict(err=1.0 / a['x'])))"
)


def test_loop_converges_on_real_results(make_engine: EngineFactory) -> None:
    e = make_engine("local")
    template = {
        "name": "converge",
        "works": [{"name": "step", "command": STEP, "parameters": {"x": "${loop.vars.x}"}}],
        "loops": [
            {
                "name": "fit",
                "works": ["step"],
                "until": "works.step.outputs.err < 0.2",
                "max_iterations": 20,
                "variables": {"x": 1},
                "next": {"x": "loop.vars.x * 2"},
            }
        ],
    }
    wf_id, wf = e.run(template)
    assert wf.status == "succeeded", wf.message
    loop = loops_of(e.db, wf_id)["fit"]
    assert (loop["status"], loop["iteration"], loop["vars"]) == ("succeeded", 3, {"x": 8})
    js = jobs_of(e.db, wf_id)
    assert [(j.args["x"], j.result["err"]) for j in js] == [
        (1, 1.0),
        (2, 0.5),
        (4, 0.25),
        (8, 0.125),
    ]


# --- job-level DAG ----------------------------------------------------------------------

STARTED = {"ready", "submitted", "running", "succeeded", "failed"}


def assert_parents_first(db: Database, wf_id: int) -> None:
    """No job has been released before every one of its parents succeeded."""
    status = {j.id: str(j.status) for j in jobs_of(db, wf_id)}
    for parent, child in edges_of(db, wf_id):
        if status[child] in STARTED:
            assert status[parent] == "succeeded", (parent, status[parent], child, status[child])


def test_job_dag_across_two_works_releases_children_after_parents(
    make_engine: EngineFactory,
) -> None:
    clock = TickingClock()  # orders ready_at after finished_at whatever the wall clock does
    e = make_engine(ScriptedExecutor(clock), clock=clock)
    template = {
        "name": "jobdag",
        "works": [
            {
                "name": "A",
                "noop": True,
                "jobs": [
                    {"name": "a1"},
                    {"name": "a2", "parents": ["a1"]},
                    {"name": "a3", "parents": ["a2"]},
                    {"name": "a4"},
                ],
            },
            {
                "name": "B",
                "noop": True,
                "jobs": [
                    {"name": "b1", "parents": ["A/a1"]},
                    {"name": "b2", "parents": ["b1", "A/a3"]},
                    {"name": "b3", "parents": ["A/a4", "b2", "A/a1"]},
                ],
            },
        ],
    }
    wf_id = e.submit(template)
    assert len(edges_of(e.db, wf_id)) == 8
    rounds = 0
    while workflow(e.db, wf_id).status not in ("succeeded", "failed", "partial", "cancelled"):
        assert rounds < 500, "the workflow did not end"
        e.runner.run_once()
        assert_parents_first(e.db, wf_id)
        rounds += 1

    assert workflow(e.db, wf_id).status == "succeeded"
    js = {j.name: j for j in jobs_of(e.db, wf_id)}
    assert all(j.status == "succeeded" and j.attempt == 1 for j in js.values())
    for parent, child in [("a1", "a2"), ("a2", "a3"), ("a3", "b2"), ("b2", "b3"), ("a1", "b1")]:
        assert js[parent].finished_at is not None and js[child].ready_at is not None
        assert js[child].ready_at > js[parent].finished_at
    assert statuses(e.db, wf_id) == {"A": "succeeded", "B": "succeeded"}


def test_failed_parent_skips_its_descendants_and_fails_the_workflow(
    make_engine: EngineFactory,
) -> None:
    e = make_engine("local", workers=4)
    template = {
        "name": "jobdag",
        "works": [
            {
                "name": "A",
                "command": SH_EXIT,
                "jobs": [
                    {"name": "a1", "args": {"code": 0}},
                    {"name": "a2", "args": {"code": 3}, "parents": ["a1"]},
                    {"name": "a3", "args": {"code": 0}},
                ],
            },
            {
                "name": "B",
                "command": SH_EXIT,
                "jobs": [
                    {"name": "b1", "args": {"code": 0}, "parents": ["A/a1"]},
                    {"name": "b2", "args": {"code": 0}, "parents": ["A/a2"]},
                    {"name": "b3", "args": {"code": 0}, "parents": ["b2", "b1"]},
                    {"name": "b4", "args": {"code": 0}, "parents": ["A/a3"]},
                ],
            },
            {"name": "C", "noop": True, "after": ["B"]},
        ],
    }
    wf_id, wf = e.run(template)

    assert wf.status == "failed"
    assert "work 'A' partial" in wf.message
    assert job_statuses(e.db, wf_id) == {
        "A/a1": "succeeded",
        "A/a2": "failed",
        "A/a3": "succeeded",
        "B/b1": "succeeded",
        "B/b2": "skipped",
        "B/b3": "skipped",
        "B/b4": "succeeded",
    }
    js = {j.name: j for j in jobs_of(e.db, wf_id)}
    assert js["a2"].exit_code == 3 and js["a2"].attempt == 1
    assert js["b2"].attempt == js["b3"].attempt == 0  # never submitted
    assert statuses(e.db, wf_id) == {"A": "partial", "B": "partial", "C": "skipped"}


def test_on_failure_continue_ends_partial(make_engine: EngineFactory) -> None:
    e = make_engine("local", workers=4)
    template = {
        "name": "partial",
        "works": [
            {
                "name": "A",
                "command": SH_EXIT,
                "map": {"items": [{"code": 0}, {"code": 1}, {"code": 0}]},
                "on_failure": "continue",
            },
            {"name": "B", "noop": True, "after": ["A"], "trigger": "all_done"},
            {"name": "C", "noop": True, "after": ["A"]},
            {"name": "D", "noop": True},
        ],
    }
    wf_id, wf = e.run(template)

    assert wf.status == "partial"
    assert wf.message == (
        "works A failed (on_failure: continue); "
        "skipped: C (upstream A partial: trigger all_success needs all to succeed)"
    )
    assert statuses(e.db, wf_id) == {
        "A": "partial",
        "B": "succeeded",
        "C": "skipped",
        "D": "succeeded",
    }
    counts = by_name(works_of(e.db, wf_id))["A"].counts
    assert counts == {"succeeded": 2, "failed": 1}


def test_a_failed_attempt_is_retried(make_engine: EngineFactory, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    e = make_engine("local")
    template = {
        "name": "flaky",
        "works": [
            {
                "name": "flaky",
                "command": [
                    "sh",
                    "-c",
                    'if [ -e "$1" ]; then exit 0; fi; touch "$1"; exit 1',
                    "sh",
                    str(marker),
                ],
                "retries": 1,
                "retry_delay": 0,
            },
            {"name": "after", "noop": True, "after": ["flaky"]},
        ],
    }
    wf_id, wf = e.run(template)

    assert wf.status == "succeeded", wf.message
    assert marker.exists()
    (job,) = [j for j in jobs_of(e.db, wf_id) if j.work_name == "flaky"]
    assert (job.status, job.attempt, job.max_attempts, job.exit_code) == ("succeeded", 2, 2, 0)
    assert job.error is None
    assert statuses(e.db, wf_id) == {"flaky": "succeeded", "after": "succeeded"}


# --- user commands ----------------------------------------------------------------------


def test_abort_cancels_a_running_job_and_the_workflow(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    e = make_engine("local")
    template = {
        "name": "long",
        "works": [
            {
                "name": "sleeper",
                "command": ["sh", "-c", 'echo $$ > "$1"; exec sleep 60', "sh", str(pidfile)],
            },
            {"name": "next", "noop": True, "after": ["sleeper"]},
        ],
    }
    wf_id = e.submit(template)
    e.run_until(
        wf_id,
        lambda: (
            pidfile.exists()
            and pidfile.read_text().strip() != ""
            and job_statuses(e.db, wf_id).get("sleeper/0") == "running"
        ),
        what="the sleep job running",
    )
    pid = int(pidfile.read_text())

    cid = add_command(e.db, wf_id, "abort")
    wf = e.drain(wf_id)
    assert wf.status == "cancelled"
    assert wf.message == "abort by the user"
    assert command_state(e.db, cid) == ("applied", "")
    e.run_until(
        wf_id,
        lambda: job_statuses(e.db, wf_id)["sleeper/0"] == "cancelled",
        what="the running job cancelled",
    )

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    e.run_until(wf_id, gone, what=f"the end of process {pid}")
    (job,) = jobs_of(e.db, wf_id)
    assert job.error == "cancelled"
    assert statuses(e.db, wf_id) == {"sleeper": "cancelled", "next": "cancelled"}
    kinds = [ev["kind"] for ev in events_of(e.db, wf_id)]
    assert "command.abort" in kinds
    # the workflow stays cancelled: the late end of the job changes nothing
    for _ in range(5):
        e.runner.run_once()
    assert workflow(e.db, wf_id).status == "cancelled"


GATE = ["sh", "-c", 'while [ ! -e "$1" ]; do sleep 0.02; done', "sh"]


def test_suspend_stops_new_jobs_and_resume_finishes(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    e = make_engine("local", workers=1)
    template = {
        "name": "suspend",
        "works": [
            {
                "name": "A",
                "command": [*GATE, str(gate)],
                "map": {"items": [{"i": i} for i in range(3)]},
            }
        ],
    }
    wf_id = e.submit(template)
    e.run_until(
        wf_id,
        lambda: "running" in job_statuses(e.db, wf_id).values(),
        what="the first job running",
    )
    (first,) = [j for j in jobs_of(e.db, wf_id) if j.status == "running"]

    cid = add_command(e.db, wf_id, "suspend")
    e.run_until(wf_id, lambda: workflow(e.db, wf_id).status == "suspended", what="suspension")
    assert command_state(e.db, cid) == ("applied", "")

    gate.touch()  # the running job may now finish
    e.run_until(
        wf_id,
        lambda: job_statuses(e.db, wf_id)[f"A/{first.name}"] == "succeeded",
        what="the running job to finish",
    )
    # plenty of rounds while suspended: no other job is submitted
    for _ in range(20):
        e.runner.run_once()
        time.sleep(0.01)
    others = [j for j in jobs_of(e.db, wf_id) if j.id != first.id]
    assert [(str(j.status), j.attempt) for j in others] == [("ready", 0), ("ready", 0)]
    assert workflow(e.db, wf_id).status == "suspended"

    cid = add_command(e.db, wf_id, "resume")
    e.run_until(wf_id, lambda: command_state(e.db, cid)[0] != "pending", what="the resume")
    assert command_state(e.db, cid) == ("applied", "")
    wf = e.drain(wf_id)
    assert wf.status == "succeeded", wf.message
    assert all(j.status == "succeeded" and j.attempt == 1 for j in jobs_of(e.db, wf_id))
    kinds = [ev["kind"] for ev in events_of(e.db, wf_id)]
    assert kinds.index("command.suspend") < kinds.index("command.resume")


def test_retry_after_fixing_the_cause_succeeds(make_engine: EngineFactory, tmp_path: Path) -> None:
    fix = tmp_path / "fixed"
    e = make_engine("local")
    template = {
        "name": "retry",
        "works": [
            {"name": "A", "command": ["sh", "-c", 'test -e "$1"', "sh", str(fix)]},
            {"name": "B", "noop": True, "after": ["A"]},
        ],
    }
    wf_id, wf = e.run(template)
    assert wf.status == "failed"
    assert statuses(e.db, wf_id) == {"A": "failed", "B": "skipped"}

    fix.touch()
    cid = add_command(e.db, wf_id, "retry")
    e.run_until(wf_id, lambda: command_state(e.db, cid)[0] != "pending", what="the retry")
    assert command_state(e.db, cid) == ("applied", "")
    wf = e.drain(wf_id)

    assert wf.status == "succeeded", wf.message
    assert statuses(e.db, wf_id) == {"A": "succeeded", "B": "succeeded"}
    js = {j.work_name: j for j in jobs_of(e.db, wf_id)}
    assert (js["A"].status, js["A"].attempt) == ("succeeded", 2)
    assert js["B"].attempt == 1
    kinds = [ev["kind"] for ev in events_of(e.db, wf_id)]
    assert [k for k in kinds if k.startswith("workflow.")] == [
        "workflow.submitted",
        "workflow.running",
        "workflow.failed",
        "workflow.running",  # the retry re-opens it
        "workflow.succeeded",
    ]
    assert "command.retry" in kinds


def test_retry_of_failed_job_dag_reopens_skipped_descendants(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    """Retry of a job DAG: the failed job runs again, the jobs skipped behind it wait again."""
    fix = tmp_path / "fixed"
    e = make_engine("local", workers=4)
    template = {
        "name": "retry-dag",
        "works": [
            {
                "name": "A",
                "command": ["sh", "-c", 'test "{name}" != bad || test -e "$1"', "sh", str(fix)],
                "jobs": [
                    {"name": "j1", "args": {"name": "ok"}},
                    {"name": "j2", "args": {"name": "bad"}, "parents": ["j1"]},
                    {"name": "j3", "args": {"name": "ok"}, "parents": ["j2"]},
                    {"name": "j4", "args": {"name": "ok"}, "parents": ["j3", "j1"]},
                ],
            }
        ],
    }
    wf_id, wf = e.run(template)
    assert wf.status == "failed"
    assert job_statuses(e.db, wf_id) == {
        "A/j1": "succeeded",
        "A/j2": "failed",
        "A/j3": "skipped",
        "A/j4": "skipped",
    }
    fix.touch()
    cid = add_command(e.db, wf_id, "retry")
    e.run_until(wf_id, lambda: command_state(e.db, cid)[0] != "pending", what="the retry")
    wf = e.drain(wf_id)
    assert wf.status == "succeeded", wf.message
    js = {j.name: j for j in jobs_of(e.db, wf_id)}
    assert {n: (str(j.status), j.attempt) for n, j in js.items()} == {
        "j1": ("succeeded", 1),
        "j2": ("succeeded", 2),
        "j3": ("succeeded", 1),
        "j4": ("succeeded", 1),
    }


def test_rejected_commands_are_recorded_with_a_message(make_engine: EngineFactory) -> None:
    e = make_engine()
    template = {
        "name": "rejects",
        "works": [{"name": "a", "noop": True}, {"name": "b", "noop": True, "after": ["a"]}],
    }
    wf_id = e.submit(template)
    e.run_until(wf_id, lambda: workflow(e.db, wf_id).status == "running", what="running")

    cid = add_command(e.db, wf_id, "resume")
    e.run_until(wf_id, lambda: command_state(e.db, cid)[0] != "pending", what="the resume")
    status, message = command_state(e.db, cid)
    assert status == "rejected"
    assert message == f"cannot resume: workflow {wf_id} is running, not suspended"
    assert workflow(e.db, wf_id).status in ("running", "succeeded")

    wf = e.drain(wf_id)
    assert wf.status == "succeeded"
    cid2 = add_command(e.db, wf_id, "suspend")
    e.run_until(wf_id, lambda: command_state(e.db, cid2)[0] != "pending", what="the suspend")
    status, message = command_state(e.db, cid2)
    assert status == "rejected"
    assert message.startswith("cannot suspend: workflow cannot go from succeeded to suspended")
    assert workflow(e.db, wf_id).status == "succeeded"

    rejected = [ev for ev in events_of(e.db, wf_id) if ev["kind"] == "command.rejected"]
    assert [(ev["data"]["command"], ev["data"]["message"]) for ev in rejected] == [
        ("resume", f"cannot resume: workflow {wf_id} is running, not suspended"),
        ("suspend", message),
    ]


def test_events_are_kept_per_workflow(make_engine: EngineFactory) -> None:
    e = make_engine()
    one = {"name": "one", "works": [{"name": "a", "noop": True}]}
    two = {"name": "two", "works": [{"name": "x", "noop": True, "map": {"items": [{}, {}]}}]}
    id1, id2 = e.submit(one), e.submit(two)
    assert e.drain(id1).status == "succeeded"
    assert e.drain(id2).status == "succeeded"
    ev1, ev2 = events_of(e.db, id1), events_of(e.db, id2)
    assert {ev["workflow_id"] for ev in ev1} == {id1}
    assert {ev["workflow_id"] for ev in ev2} == {id2}
    assert ev1[0]["kind"] == ev2[0]["kind"] == "workflow.submitted"
    assert ev2[0]["data"] == {"name": "two", "jobs": 0}
    running = [ev for ev in ev2 if ev["kind"] == "work.running"]
    assert [ev["data"]["jobs"] for ev in running] == [2]
    # paging with after_id returns the rest, oldest first
    from orchid.store import events

    with e.db.begin() as conn:
        tail = events.since(conn, id1, ev1[1]["id"])
    assert [ev["id"] for ev in tail] == [ev["id"] for ev in ev1[2:]]
    assert all(isinstance(ev["created_at"], float) for ev in ev1)
    assert json.loads(json.dumps(ev1[-1]["data"])) == ev1[-1]["data"]


# --- bugs found by these tests (strict xfail: they pass once the bug is fixed) ------------


def test_counts_of_a_work_can_be_read_without_its_results(make_engine: EngineFactory) -> None:
    e = make_engine()
    template = {
        "name": "counts",
        "works": [
            {"name": "sweep", "noop": True, "map": {"items": [{}, {}, {}, {}]}},
            {
                "name": "merge",
                "noop": True,
                "after": ["sweep"],
                "parameters": {"n": "${works.sweep.counts}"},
                "when": "works.sweep.counts.succeeded == 4",
            },
        ],
    }
    wf_id, wf = e.run(template)
    assert wf.status == "succeeded", wf.message
    (merge,) = [j for j in jobs_of(e.db, wf_id) if j.work_name == "merge"]
    assert merge.args == {"n": {"succeeded": 4}}


def test_a_static_work_waits_for_all_its_jobs_when_some_were_skipped_before_it_started(
    make_engine: EngineFactory,
) -> None:
    ex = ScriptedExecutor()
    e = make_engine(ex)
    template = {
        "name": "remaining",
        "works": [
            {
                "name": "A",
                "noop": True,
                "on_failure": "continue",
                "jobs": [{"name": "a1", "args": {"fail_attempts": 1}}],
            },
            {
                "name": "B",
                "noop": True,
                "after": ["A"],
                "trigger": "all_done",
                "on_failure": "continue",
                "jobs": [
                    {"name": "b1", "parents": ["A/a1"]},
                    {"name": "b2", "args": {"hold": True}},
                ],
            },
        ],
    }
    wf_id = e.submit(template)
    e.run_until(
        wf_id, lambda: job_statuses(e.db, wf_id).get("B/b2") == "running", what="b2 running"
    )
    for _ in range(5):
        e.runner.run_once()
    # b2 still runs, so B and the workflow must still be running
    assert statuses(e.db, wf_id)["B"] == "running"
    assert workflow(e.db, wf_id).status == "running"
    ex.release()
    wf = e.drain(wf_id)
    assert wf.status == "partial"
    b = by_name(works_of(e.db, wf_id))["B"]
    assert (b.status, b.counts) == ("partial", {"succeeded": 1, "skipped": 1})


def test_an_abort_writes_the_status_events(make_engine: EngineFactory) -> None:
    ex = ScriptedExecutor()
    e = make_engine(ex)
    template = {
        "name": "abort-events",
        "works": [
            {"name": "a", "noop": True, "parameters": {"hold": True}},
            {"name": "b", "noop": True, "after": ["a"]},
        ],
    }
    wf_id = e.submit(template)
    e.run_until(wf_id, lambda: job_statuses(e.db, wf_id).get("a/0") == "running", what="running")
    add_command(e.db, wf_id, "abort")
    assert e.drain(wf_id).status == "cancelled"
    kinds = [ev["kind"] for ev in events_of(e.db, wf_id)]
    assert "command.abort" in kinds
    assert kinds.count("work.cancelled") == 2
    assert [k for k in kinds if k.startswith("workflow.")][-1] == "workflow.cancelled"
