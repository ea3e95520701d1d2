"""Nested workflows (a work that is a workflow, ``workflow:``) end to end, on both databases:
the expansion runs in order, reads its own scope, and its work ends with its outcome."""

from __future__ import annotations

from typing import Any

import pytest

from orchid.engine.submit import check_size
from orchid.errors import TemplateError
from tests.engine.enginekit import (
    EngineFactory,
    ScriptedExecutor,
    edges_of,
    events_of,
    jobs_of,
    loops_of,
    works_of,
)
from tests.engine.test_workflows import add_command, by_name, command_state, statuses


def _nested(**work: Any) -> dict[str, Any]:
    return {
        "name": "sub",
        "after": ["prep"],
        "parameters": {"k": "${params.n * 10}"},
        "workflow": {
            "parameters": {"k": 1, "tag": "inner"},
            "works": [
                {
                    "name": "a",
                    "noop": True,
                    "parameters": {"x": "${params.k}", "t": "${params.tag}"},
                },
                {
                    "name": "b",
                    "noop": True,
                    "after": ["a"],
                    "when": "works.a.status == 'succeeded'",
                    "parameters": {"a": "${works.a.status}"},
                },
            ],
        },
        **work,
    }


def test_a_nested_workflow_runs_in_order_in_its_own_scope(make_engine: EngineFactory) -> None:
    e = make_engine()
    template = {
        "name": "outer",
        "parameters": {"n": 4},
        "works": [
            {"name": "prep", "noop": True},
            _nested(),
            {
                "name": "post",
                "noop": True,
                "after": ["sub"],
                "when": "works.sub.status == 'succeeded'",
            },
        ],
    }
    wf_id, wf = e.run(template)

    assert wf.status == "succeeded", wf.message
    assert statuses(e.db, wf_id) == dict.fromkeys(
        ["prep", "sub.a", "sub.b", "sub", "post"], "succeeded"
    )
    args = {j.work_name: dict(j.args) for j in jobs_of(e.db, wf_id)}
    assert args["sub.a"] == {"x": 40, "t": "inner"}  # its parameter, given by the outer one
    assert args["sub.b"] == {"a": "succeeded"}  # `works.a` is the nested workflow's own a
    ws = by_name(works_of(e.db, wf_id))
    evs = events_of(e.db, wf_id)

    def at(kind: str, work: str) -> int:
        (i,) = [
            i
            for i, ev in enumerate(evs)
            if ev["kind"] == kind and ev["data"].get("work_id") == ws[work].id
        ]
        return i

    assert at("work.succeeded", "prep") < at("work.ready", "sub.a")
    assert at("work.succeeded", "sub.a") < at("work.ready", "sub.b")
    assert at("work.succeeded", "sub.b") < at("work.ready", "sub")
    assert at("work.succeeded", "sub") < at("work.ready", "post")


def test_a_nested_workflow_whose_condition_is_false_is_skipped_whole(
    make_engine: EngineFactory,
) -> None:
    """The nested work's `when` holds back every inner work, even one whose own trigger
    (all_done) would run after a skipped one; the outer work sees `skipped`."""
    e = make_engine()
    sub = _nested(when="params.n > 100")
    sub["workflow"]["works"][1]["trigger"] = "all_done"
    sub["workflow"]["works"][1].pop("when")
    template = {
        "name": "outer",
        "parameters": {"n": 4},
        "works": [
            {"name": "prep", "noop": True},
            sub,
            {
                "name": "post",
                "noop": True,
                "after": ["sub"],
                "trigger": "all_done",
                "when": "works.sub.status == 'skipped'",
            },
        ],
    }
    wf_id, wf = e.run(template)

    assert wf.status == "succeeded", wf.message
    got = statuses(e.db, wf_id)
    assert got == {
        "prep": "succeeded",
        "sub.a": "skipped",
        "sub.b": "skipped",
        "sub": "skipped",
        "post": "succeeded",
    }
    ws = by_name(works_of(e.db, wf_id))
    assert (
        "nested workflow 'sub' not run: condition `params.n > 100` is false" in ws["sub.b"].message
    )


def test_a_failure_inside_that_continues_fails_the_nested_work_and_the_outer_goes_on(
    make_engine: EngineFactory,
) -> None:
    e = make_engine(ScriptedExecutor())
    template = {
        "name": "outer",
        "works": [
            {
                "name": "sub",
                "workflow": {
                    "works": [
                        {
                            "name": "bad",
                            "noop": False,
                            "command": ["true"],
                            "parameters": {"fail_attempts": 1},
                            "on_failure": "continue",
                        },
                        {"name": "good", "command": ["true"]},
                    ]
                },
            },
            {
                "name": "after_all",
                "command": ["true"],
                "after": ["sub"],
                "trigger": "all_done",
                "parameters": {"s": "${works.sub.status}"},
            },
        ],
    }
    wf_id, wf = e.run(template)

    assert wf.status == "partial", wf.message
    got = statuses(e.db, wf_id)
    assert got["sub.bad"] == "failed" and got["sub.good"] == "succeeded"
    assert got["sub"] == "failed"
    (job,) = [j for j in jobs_of(e.db, wf_id) if j.work_name == "after_all"]
    assert job.args == {"s": "failed"}


def test_nested_workflows_nest_and_loop(make_engine: EngineFactory) -> None:
    """Two levels, a loop inside the nested workflow (its `until` reads its own works and
    `loop`), and parameters passed down twice."""
    e = make_engine()
    template = {
        "name": "outer",
        "parameters": {"n": 2},
        "works": [
            {
                "name": "sub",
                "parameters": {"m": "${params.n + 1}"},
                "workflow": {
                    "parameters": {"m": 0},
                    "works": [
                        {"name": "step", "noop": True, "parameters": {"i": "${loop.iteration}"}},
                        {
                            "name": "deeper",
                            "after": ["repeat"],
                            "parameters": {"v": "${params.m * 2}"},
                            "workflow": {
                                "parameters": {"v": 0},
                                "works": [
                                    {
                                        "name": "leaf",
                                        "noop": True,
                                        "parameters": {"v": "${params.v}"},
                                    }
                                ],
                            },
                        },
                    ],
                    "loops": [
                        {
                            "name": "repeat",
                            "works": ["step"],
                            "until": "loop.iteration + 1 >= params.m and works.step.status == 'succeeded'",
                            "max_iterations": 10,
                        }
                    ],
                },
            },
        ],
    }
    wf_id, wf = e.run(template)

    assert wf.status == "succeeded", wf.message
    got = statuses(e.db, wf_id)
    assert got == dict.fromkeys(["sub.step", "sub.deeper.leaf", "sub.deeper", "sub"], "succeeded")
    assert loops_of(e.db, wf_id)["sub.repeat"]["iteration"] == 2  # m = 3: iterations 0..2
    js = jobs_of(e.db, wf_id)
    assert [j.args["i"] for j in js if j.work_name == "sub.step"] == [0, 1, 2]
    (leaf,) = [j for j in js if j.work_name == "sub.deeper.leaf"]
    assert leaf.args == {"v": 6}


def test_a_nested_workflow_inside_an_outer_loop_repeats_with_it(
    make_engine: EngineFactory,
) -> None:
    e = make_engine()
    template = {
        "name": "outer",
        "works": [
            {
                "name": "sub",
                "parameters": {"i": "${loop.iteration}"},
                "workflow": {
                    "parameters": {"i": -1},
                    "works": [
                        {"name": "a", "noop": True, "parameters": {"i": "${params.i}"}},
                        {"name": "b", "noop": True, "after": ["a"]},
                    ],
                },
            }
        ],
        "loops": [
            {
                "name": "again",
                "works": ["sub"],
                "until": "works.sub.status == 'succeeded' and loop.iteration >= 1",
                "max_iterations": 5,
            }
        ],
    }
    wf_id, wf = e.run(template)

    assert wf.status == "succeeded", wf.message
    js = jobs_of(e.db, wf_id)
    assert [j.args["i"] for j in js if j.work_name == "sub.a"] == [0, 1]
    assert sorted(w.iteration for w in works_of(e.db, wf_id) if w.name == "sub") == [0, 1]


def test_listed_jobs_inside_a_nested_workflow_keep_their_parents(
    make_engine: EngineFactory,
) -> None:
    e = make_engine()
    template = {
        "name": "outer",
        "works": [
            {
                "name": "sub",
                "workflow": {
                    "works": [
                        {"name": "a", "noop": True, "jobs": [{"name": "j1"}, {"name": "j2"}]},
                        {
                            "name": "b",
                            "noop": True,
                            "jobs": [{"name": "k", "parents": ["a/j1", "a/j2"]}],
                        },
                    ]
                },
            }
        ],
    }
    wf_id, wf = e.run(template)

    assert wf.status == "succeeded", wf.message
    by_id = {j.id: f"{j.work_name}/{j.name}" for j in jobs_of(e.db, wf_id)}
    assert sorted((by_id[a], by_id[b]) for a, b in edges_of(e.db, wf_id)) == [
        ("sub.a/j1", "sub.b/k"),
        ("sub.a/j2", "sub.b/k"),
    ]


def test_the_works_limit_counts_the_works_of_nested_workflows() -> None:
    inner = {"works": [{"name": f"w{i}", "noop": True} for i in range(3)]}
    raw = {"name": "big", "works": [{"name": "n", "workflow": inner}, {"name": "m", "noop": True}]}
    check_size(raw, 5)  # 3 + 2
    with pytest.raises(TemplateError, match="holds 5 works, more than the limit of 4"):
        check_size(raw, 4)


def test_a_retry_reruns_the_failed_work_inside_and_the_nested_work_again(
    make_engine: EngineFactory,
) -> None:
    """The scripted job fails its first attempt only: the retry's attempt succeeds, and the
    nested work (failed, with no jobs of its own) waits again and ends succeeded."""
    e = make_engine(ScriptedExecutor())
    template = {
        "name": "outer",
        "works": [
            {
                "name": "sub",
                "workflow": {
                    "works": [
                        {
                            "name": "flaky",
                            "command": ["true"],
                            "parameters": {"fail_attempts": 1},
                            "on_failure": "continue",
                        }
                    ]
                },
            },
            {"name": "post", "command": ["true"], "after": ["sub"]},
        ],
    }
    wf_id, wf = e.run(template)
    assert wf.status == "partial", wf.message
    assert statuses(e.db, wf_id) == {"sub.flaky": "failed", "sub": "failed", "post": "skipped"}

    cid = add_command(e.db, wf_id, "retry")
    e.run_until(wf_id, lambda: command_state(e.db, cid)[0] != "pending", what="the retry")
    wf = e.drain(wf_id)

    assert wf.status == "succeeded", wf.message
    assert statuses(e.db, wf_id) == dict.fromkeys(["sub.flaky", "sub", "post"], "succeeded")


def test_a_nested_workflows_loop_inside_an_outer_loop_runs_afresh_each_iteration(
    make_engine: EngineFactory,
) -> None:
    """An outer loop repeating a nested workflow that has a loop: its loop is a loop inside
    the outer loop, run to its end in each outer iteration from its first variables."""
    e = make_engine()
    template = {
        "name": "outer",
        "works": [
            {"name": "prep", "noop": True, "parameters": {"o": "${loop.vars.o}"}},
            {
                "name": "sub",
                "after": ["prep"],
                "parameters": {"o": "${loop.vars.o}"},
                "workflow": {
                    "parameters": {"o": 0},
                    "works": [
                        {
                            "name": "step",
                            "noop": True,
                            "parameters": {
                                "o": "${params.o}",
                                "i": "${loop.vars.i}",
                                "k": "${loop.iteration}",
                            },
                        },
                        {
                            "name": "post",
                            "noop": True,
                            "after": ["again"],
                            "parameters": {"n": "${loops.again.iteration}"},
                        },
                    ],
                    "loops": [
                        {
                            "name": "again",
                            "works": ["step"],
                            "variables": {"i": "${params.o}"},
                            "next": {"i": "loop.vars.i + 1"},
                            "until": "loop.vars.i >= params.o + 2",
                            "max_iterations": 5,
                        }
                    ],
                },
            },
        ],
        "loops": [
            {
                "name": "rounds",
                "works": ["prep", "sub"],
                "variables": {"o": 10},
                "next": {"o": "loop.vars.o + 10"},
                "until": "works.sub.status == 'succeeded' and loop.iteration + 1 >= 3",
                "max_iterations": 5,
            }
        ],
    }
    wf_id, wf = e.run(template)

    assert wf.status == "succeeded", wf.message
    js = sorted(jobs_of(e.db, wf_id), key=lambda j: j.id)
    # in order: each outer iteration runs prep, the inner loop to its end, post, then sub
    one = ["prep", "sub.step", "sub.step", "sub.step", "sub.post", "sub"]
    assert [j.work_name for j in js] == one * 3
    steps = [(j.args["o"], j.args["i"], j.args["k"]) for j in js if j.work_name == "sub.step"]
    assert steps == [(o, o + k, k) for o in (10, 20, 30) for k in range(3)]  # afresh
    assert [j.args["n"] for j in js if j.work_name == "sub.post"] == [2, 2, 2]
    rows = works_of(e.db, wf_id)
    assert sorted(w.iteration for w in rows if w.name == "sub") == [0, 1, 2]
    assert sorted(w.iteration for w in rows if w.name == "sub.step") == list(range(9))
    assert {str(w.status) for w in rows} == {"succeeded"}
    loops = loops_of(e.db, wf_id)
    assert (loops["rounds"]["status"], loops["rounds"]["iteration"]) == ("succeeded", 2)
    inner = loops["sub.again"]
    assert (inner["status"], inner["iteration"], inner["vars"]) == ("succeeded", 2, {"i": 32})
    assert inner["serial"] == 8  # its rows keep counting: sub.step#8
