"""Loops inside loops, end to end through the agents on both databases.

Each iteration of the outer loop runs the inner loop to its end, afresh from its first
variables; the inner loop's work rows keep counting (each row its own iteration number).
"""

from __future__ import annotations

import time
from typing import Any

from orchid.store import commands
from tests.engine.enginekit import (
    Engine,
    EngineFactory,
    ScriptedExecutor,
    describe,
    events_of,
    jobs_of,
    loops_of,
    works_of,
)


def nested(**step: Any) -> dict[str, Any]:
    """outer (o = 10, 20, 30 …) runs prep, then inner (i from o to o + 1), then post; it
    ends when the inner loop's last i reaches 31; report reads both loops after them."""
    return {
        "name": "nested",
        "works": [
            {"name": "prep", "noop": True, "parameters": {"o": "${loop.vars.o}"}},
            {
                "name": "step",
                "noop": True,
                "parameters": {
                    "o": "${loops.outer.vars.o}",
                    "i": "${loop.vars.i}",
                    "k": "${loop.iteration}",
                    **step,
                },
            },
            {
                "name": "post",
                "noop": True,
                "after": ["inner"],
                "parameters": {"i": "${loops.inner.vars.i}", "n": "${loops.inner.iteration}"},
            },
            {
                "name": "report",
                "noop": True,
                "after": ["outer"],
                "parameters": {"o": "${loops.outer.vars.o}", "n": "${loops.outer.iteration}"},
            },
        ],
        "loops": [
            {
                "name": "outer",
                "works": ["prep", "inner", "post"],
                "until": "loops.inner.vars.i >= 31",
                "max_iterations": 5,
                "variables": {"o": 10},
                "next": {"o": "loop.vars.o + 10"},
            },
            {
                "name": "inner",
                "works": ["step"],
                "after": ["prep"],
                "until": "loop.vars.i >= loops.outer.vars.o + 1",
                "max_iterations": 10,
                "variables": {"i": "${loops.outer.vars.o}"},
                "next": {"i": "loop.vars.i + 1"},
            },
        ],
    }


def applied(e: Engine, command_id: int) -> bool:
    with e.db.begin() as conn:
        got = commands.get(conn, command_id)
    return got is not None and got[0] != "pending"


def args_of(e: Engine, wf_id: int, work: str, *keys: str) -> list[tuple[Any, ...]]:
    js = sorted((j for j in jobs_of(e.db, wf_id) if j.work_name == work), key=lambda j: j.id)
    return [tuple(j.args[k] for k in keys) for j in js]


def test_inner_loop_runs_to_its_end_in_each_outer_iteration(make_engine: EngineFactory) -> None:
    e = make_engine()
    wf_id, wf = e.run(nested())
    assert wf.status == "succeeded", describe(e.db, wf_id)
    assert args_of(e, wf_id, "prep", "o") == [(10,), (20,), (30,)]
    # afresh in each outer iteration: i from the outer o, loop.iteration from 0
    assert args_of(e, wf_id, "step", "o", "i", "k") == [
        (10, 10, 0),
        (10, 11, 1),
        (20, 20, 0),
        (20, 21, 1),
        (30, 30, 0),
        (30, 31, 1),
    ]
    # the outer loop's works after the inner loop see its final state
    assert args_of(e, wf_id, "post", "i", "n") == [(11, 1), (21, 1), (31, 1)]
    assert args_of(e, wf_id, "report", "o", "n") == [(30, 2)]
    rows = sorted((w.name, w.iteration, str(w.status)) for w in works_of(e.db, wf_id))
    assert [(n, i) for n, i, _ in rows if n == "step"] == [("step", k) for k in range(6)]
    assert [(n, i) for n, i, _ in rows if n == "post"] == [("post", k) for k in range(3)]
    assert {s for _, _, s in rows} == {"succeeded"}
    loops = loops_of(e.db, wf_id)
    assert (loops["outer"]["status"], loops["outer"]["iteration"]) == ("succeeded", 2)
    assert loops["outer"]["vars"] == {"o": 30}
    inner = loops["inner"]
    assert (inner["status"], inner["iteration"], inner["vars"]) == ("succeeded", 1, {"i": 31})
    assert inner["serial"] == 5  # the rows of its last iteration: step#5
    inner_events = [
        (d["status"], d["iteration"])
        for d in (ev["data"] for ev in events_of(e.db, wf_id) if ev["kind"] == "loop")
        if d["loop"] == "inner"
    ]
    assert (
        inner_events
        == [("running", 0), ("running", 1), ("succeeded", 1)]
        + [
            ("waiting", 0),
            ("running", 0),
            ("running", 1),
            ("succeeded", 1),
        ]
        * 2
    )


def test_inner_loop_reaching_max_iterations_fails_the_outer_loop(
    make_engine: EngineFactory,
) -> None:
    e = make_engine()
    template = nested()
    template["loops"][1].update(until="false", max_iterations=2, on_max_iterations="fail")
    wf_id, wf = e.run(template)
    assert wf.status == "failed", describe(e.db, wf_id)
    assert "loop 'inner' failed: reached max_iterations=2" in wf.message
    loops = loops_of(e.db, wf_id)
    assert loops["inner"]["status"] == "failed"
    assert loops["outer"]["status"] == "failed"
    assert loops["outer"]["iteration"] == 0  # no second outer iteration
    assert args_of(e, wf_id, "step", "i") == [(10,), (11,)]
    statuses = {(w.name, w.iteration): str(w.status) for w in works_of(e.db, wf_id)}
    assert statuses[("post", 0)] == "skipped"
    assert statuses[("report", 0)] == "skipped"


def test_failure_inside_an_inner_loop_fails_the_workflow_and_retry_goes_on(
    make_engine: EngineFactory,
) -> None:
    e = make_engine(ScriptedExecutor())
    # the first inner step of the second outer iteration fails its first attempt
    wf_id, wf = e.run(nested(fail_attempts="${loop.vars.i == 20}"))
    assert wf.status == "failed", describe(e.db, wf_id)
    assert wf.message.startswith("work 'step' failed")
    loops = loops_of(e.db, wf_id)
    assert (loops["outer"]["status"], loops["outer"]["iteration"]) == ("failed", 1)
    assert (loops["inner"]["status"], loops["inner"]["iteration"]) == ("failed", 0)
    assert args_of(e, wf_id, "step", "o", "i") == [(10, 10), (10, 11), (20, 20)]

    with e.db.begin() as conn:
        cid = commands.add(conn, wf_id, "retry", time.time())
    e.run_until(wf_id, lambda: applied(e, cid), what="the retry")
    wf = e.drain(wf_id)
    assert wf.status == "succeeded", describe(e.db, wf_id)
    assert args_of(e, wf_id, "post", "i") == [(11,), (21,), (31,)]
    step = [(w.iteration, str(w.status)) for w in works_of(e.db, wf_id) if w.name == "step"]
    assert sorted(step) == [(k, "succeeded") for k in range(6)]  # the failed row, retried
    assert args_of(e, wf_id, "report", "o") == [(30,)]


def test_an_outer_loop_skipped_skips_the_inner_loop_and_its_works(
    make_engine: EngineFactory,
) -> None:
    e = make_engine(ScriptedExecutor())
    template = nested()
    template["works"].insert(
        0,
        {
            "name": "gate",
            "noop": True,
            "on_failure": "continue",
            "parameters": {"fail_attempts": 1},
        },
    )
    template["loops"][0]["after"] = ["gate"]
    wf_id, wf = e.run(template)
    assert wf.status == "partial", describe(e.db, wf_id)
    loops = loops_of(e.db, wf_id)
    assert (loops["outer"]["status"], loops["outer"]["cause"]) == ("skipped", "upstream")
    assert (loops["inner"]["status"], loops["inner"]["cause"]) == ("skipped", "upstream")
    assert loops["inner"]["message"].startswith("loop 'outer' skipped")
    statuses = {w.name: str(w.status) for w in works_of(e.db, wf_id)}
    assert statuses == {
        "gate": "failed",
        "prep": "skipped",
        "step": "skipped",
        "post": "skipped",
        "report": "skipped",
    }
    assert [j.work_name for j in jobs_of(e.db, wf_id)] == ["gate"]


def test_finish_while_an_inner_loop_runs_ends_both_loops_after_what_runs(
    make_engine: EngineFactory,
) -> None:
    ex = ScriptedExecutor()
    e = make_engine(ex)
    wf_id = e.submit(nested(hold="${loop.vars.i == 21}"))  # the second outer iteration
    e.run_until(wf_id, lambda: ex.held != {}, what="the held step")
    with e.db.begin() as conn:
        commands.add(conn, wf_id, "finish", time.time())
    for _ in range(10):
        e.runner.run_once()
    assert loops_of(e.db, wf_id)["inner"]["status"] == "running"  # what runs is left to end
    ex.release()
    wf = e.drain(wf_id)
    assert wf.status == "succeeded", describe(e.db, wf_id)
    loops = loops_of(e.db, wf_id)
    assert (loops["outer"]["status"], loops["outer"]["cause"]) == ("succeeded", "finish")
    assert (loops["inner"]["status"], loops["inner"]["cause"]) == ("succeeded", "finish")
    assert args_of(e, wf_id, "step", "i") == [(10,), (11,), (20,), (21,)]
    latest = {
        w.name: str(w.status) for w in sorted(works_of(e.db, wf_id), key=lambda w: w.iteration)
    }
    assert latest == {
        "prep": "succeeded",
        "step": "succeeded",
        "post": "skipped",
        "report": "skipped",
    }
