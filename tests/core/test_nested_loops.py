"""Loops inside loops: what validation accepts and refuses, with the path at fault."""

from __future__ import annotations

from typing import Any

import pytest

from orchid.core.validate import MAX_LOOP_DEPTH, MAX_NESTED_ITERATIONS
from tests.core.test_template import L, W, compile_raw, only, problems


def nested(**changes: Any) -> dict[str, Any]:
    """outer repeats prep, inner (after prep) and post (after inner); inner repeats step."""
    works = {
        "prep": W("prep"),
        "step": W("step", parameters={"o": "${loops.outer.vars.o}", "i": "${loop.vars.i}"}),
        "post": W("post", after=["inner"], parameters={"i": "${loops.inner.vars.i}"}),
        "report": W("report", after=["outer"], parameters={"s": "${works.step.outputs}"}),
    }
    loops = {
        "outer": L(
            "outer",
            ["prep", "inner", "post"],
            until="loops.inner.vars.i > 3",
            variables={"o": 1},
            next={"o": "loop.vars.o + 1"},
        ),
        "inner": L(
            "inner",
            ["step"],
            after=["prep"],
            until="loop.vars.i >= loops.outer.vars.o + 2 and works.step.status == 'succeeded'",
            variables={"i": "${loops.outer.vars.o}", "p": "${works.prep.outputs}"},
            next={"i": "loop.vars.i + 1"},
        ),
    }
    for name, fields in changes.items():
        (works if name in works else loops)[name].update(fields)
    return {"name": "n", "works": list(works.values()), "loops": list(loops.values())}


def test_a_loop_may_repeat_a_loop() -> None:
    _, a = compile_raw(nested())
    assert a.order == ("prep", "step", "post", "report")
    assert a.needs["inner"] == {"prep"}
    assert a.needs["post"] == {"inner"}
    assert a.needs["report"] == {"outer"}
    assert a.upstream["post"] == {"prep", "step"}
    assert a.upstream["report"] == {"prep", "step", "post"}
    assert a.upstream["outer"] == {"prep", "step", "post"}  # its `until` reads its iteration
    assert a.read_outputs == {"prep", "step"}


def test_works_inside_an_inner_loop_waiting_outside_make_the_loops_wait() -> None:
    raw = nested(step={"after": ["prep"]}, inner={"after": []})
    _, a = compile_raw(raw)
    assert a.needs["inner"] == {"prep"}  # the inner loop, the one in the same loop as prep
    raw = nested()
    raw["works"].insert(0, W("setup"))
    raw["works"][2]["after"] = ["setup"]  # step, two loops deep, after a work outside both
    _, a = compile_raw(raw)
    assert a.needs["outer"] == {"setup"}
    assert a.order == ("setup", "prep", "step", "post", "report")


def test_a_loop_in_two_loops() -> None:
    raw = nested()
    raw["loops"].append(L("other", ["inner"]))
    path, msg = only(raw)
    assert path == "loops[2](other).works[0]"
    assert msg == "'inner' is already in loop 'outer'; a loop belongs to one loop"


def test_a_work_in_an_outer_and_an_inner_loop() -> None:
    path, msg = only(nested(inner={"works": ["step", "prep"]}))
    assert path == "loops[1](inner).works[1]"
    assert msg == "'prep' is already in loop 'outer'; a work belongs to one loop"


def test_a_loop_listing_itself() -> None:
    path, msg = only(nested(inner={"works": ["step", "inner"]}))
    assert (path, msg) == ("loops[1](inner).works[1]", "loop 'inner' cannot repeat itself")


def test_loops_inside_each_other_in_a_cycle_are_reported_once() -> None:
    raw = {
        "name": "c",
        "works": [W("a"), W("b"), W("c")],
        "loops": [L("x", ["a", "z"]), L("y", ["b", "x"]), L("z", ["c", "y"])],
    }
    path, msg = only(raw)
    assert path == "loops[0](x).works[1]"
    assert msg.startswith("loops are inside each other in a cycle: x > z > y > x;")


def chain(depth: int) -> dict[str, Any]:
    """l1 > l2 > … > l{depth}, each with a work of its own."""
    loops = [
        L(f"l{d}", [f"w{d}"] + ([f"l{d + 1}"] if d < depth else [])) for d in range(1, depth + 1)
    ]
    return {"name": "deep", "works": [W(f"w{d}") for d in range(1, depth + 1)], "loops": loops}


def test_loops_nest_up_to_the_limit() -> None:
    _, a = compile_raw(chain(MAX_LOOP_DEPTH))
    assert a.order == tuple(f"w{d}" for d in range(1, MAX_LOOP_DEPTH + 1))


@pytest.mark.parametrize("depth", [MAX_LOOP_DEPTH + 1, MAX_LOOP_DEPTH + 3])
def test_loops_nested_too_deep(depth: int) -> None:
    path, msg = only(chain(depth))  # once, at the first loop past the limit
    assert path == f"loops[{MAX_LOOP_DEPTH - 1}](l{MAX_LOOP_DEPTH}).works[1]"
    assert msg.startswith(
        f"loop 'l{MAX_LOOP_DEPTH + 1}' is {MAX_LOOP_DEPTH + 1} loops deep (l1 > l2"
    )
    assert msg.endswith(f"loops nest at most {MAX_LOOP_DEPTH} deep")


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        (
            {"step": {"after": ["outer"]}},
            "works[1](step).after[0]",
            "'step' is inside loop 'outer' and cannot wait for it",
        ),
        (
            {"outer": {"after": ["step"]}},
            "loops[0](outer).after[0]",
            "a loop cannot wait for its own work 'step'",
        ),
        (
            {"report": {"after": ["outer", "inner"]}},
            "works[3](report).after[1]",
            "'inner' is inside loop 'outer'; wait for the whole loop: after: [outer]",
        ),
        (
            {"report": {"after": ["outer", "step"]}},
            "works[3](report).after[1]",
            "'step' is inside loop 'outer'; wait for the whole loop: after: [outer]",
        ),
        (
            {"post": {"after": ["inner", "step"]}},
            "works[2](post).after[1]",
            "'step' is inside loop 'inner'; wait for the whole loop: after: [inner]",
        ),
    ],
)
def test_after_across_loops(changes: dict[str, Any], path: str, message: str) -> None:
    assert only(nested(**changes)) == (path, message)


@pytest.mark.parametrize(
    ("changes", "path", "gist"),
    [
        # post reads step's results, but does not wait for the inner loop
        ({"post": {"after": []}}, "works[2](post).parameters", "loop 'inner' is not upstream"),
        (
            {"post": {"after": [], "parameters": {"s": "${works.step.outputs}"}}},
            "works[2](post).parameters",
            "work 'step' is not upstream",
        ),
        # an inner loop's first variables come before its iteration's works
        (
            {"inner": {"variables": {"i": "${works.step.outputs}"}}},
            "loops[1](inner).variables",
            "work 'step' is not upstream",
        ),
        # ... and, inside the outer loop, before what waits for the inner loop
        (
            {"inner": {"variables": {"i": "${works.post.outputs}"}}},
            "loops[1](inner).variables",
            "work 'post' is not upstream",
        ),
        # a work of the inner loop reads the outer iteration's works before the inner loop
        ({"step": {"parameters": {"p": "${works.prep.outputs}"}}}, None, None),
        # ... not those after it
        (
            {"step": {"parameters": {"p": "${works.post.outputs}"}}},
            "works[1](step).parameters",
            "work 'post' is not upstream",
        ),
        # the outer loop's `until` reads the inner loop's last works; works after the outer
        # loop read the inner loop too
        ({"outer": {"until": "works.step.outputs > 1 and works.post.status == 'x'"}}, None, None),
        ({"report": {"parameters": {"n": "${loops.inner.iteration}"}}}, None, None),
    ],
)
def test_what_expressions_in_nested_loops_may_read(
    changes: dict[str, Any], path: str | None, gist: str | None
) -> None:
    if path is None:
        compile_raw(nested(**changes))
        return
    found = problems(nested(**changes))
    assert [p for p, _ in found] == [path]
    assert gist is not None and gist in found[0][1]


def test_loops_inside_loops_may_run_so_many_iterations_together() -> None:
    raw = chain(3)
    for lp, n in zip(raw["loops"], (100, 1_000, 1), strict=True):
        lp["max_iterations"] = n
    compile_raw(raw)  # 100 × 1,000 × 1 = MAX_NESTED_ITERATIONS: allowed
    raw["loops"][2]["max_iterations"] = 3  # l3 makes it 300,000
    path, msg = only(raw)  # once, at the loop that passes the limit
    assert path == "loops[2](l3).max_iterations"
    assert msg.startswith("loops inside loops may run 300,000 iterations together")
    assert "(l1 100 × l2 1,000 × l3 3)" in msg and msg.endswith(
        "lower the max_iterations of these loops"
    )
    assert MAX_NESTED_ITERATIONS == 100_000


def test_a_looped_nested_workflow_counts_its_loops_iterations_with_the_outer_ones() -> None:
    inner = {"works": [W("step")], "loops": [L("inner", ["step"], max_iterations=1_000)]}
    raw = {
        "name": "outer",
        "works": [{"name": "sub", "workflow": inner}],
        "loops": [L("outer", ["sub"], max_iterations=1_000)],
    }
    _, msg = only(raw)
    assert "1,000,000 iterations together" in msg
