"""Whole-template checks at scale: the upstream rule on random templates against a plain
model, reachability in bit sets, and templates of 10^4 works checked in linear time."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchid.core.dag import ancestors, reachable_pairs
from orchid.core.plan import RunState, WorkState
from orchid.core.states import WorkflowStatus, WorkStatus
from orchid.core.template import parse_template
from orchid.core.validate import analyse
from orchid.errors import TemplateError

PROPERTY = settings(max_examples=60, deadline=None, database=None, derandomize=True)


# --- reachable_pairs ----------------------------------------------------------------------


@st.composite
def dag_and_pairs(draw: st.DrawFn) -> tuple[list[int], dict[int, set[int]], list[tuple[int, int]]]:
    n = draw(st.integers(1, 14))
    parents: dict[int, set[int]] = {
        j: {i for i in range(j) if draw(st.integers(0, 3)) == 0} for j in range(n)
    }
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=30))
    return list(range(n)), parents, pairs


@PROPERTY
@given(dag_and_pairs(), st.sampled_from([1, 2, 3, 64]))
def test_reachable_pairs_are_the_ancestor_pairs(
    graph: tuple[list[int], dict[int, set[int]], list[tuple[int, int]]], width: int
) -> None:
    order, parents, pairs = graph
    expected = {(a, b) for a, b in pairs if a in ancestors(b, parents)}
    assert reachable_pairs(order, parents, pairs, width=width) == expected


def test_reachable_pairs_of_a_long_chain() -> None:
    n = 50_000
    parents = {i: {i - 1} for i in range(1, n)}
    pairs = [(0, n - 1), (n - 1, 0), (10, 20), (20, 10), (5, 5)]
    assert reachable_pairs(list(range(n)), parents, pairs) == {(0, n - 1), (10, 20)}


# --- the upstream rule on random templates ------------------------------------------------


@st.composite
def templates(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    """A valid structure (outer works and loops, `after` only backwards) whose every work
    and loop has expressions reading one random work or loop; and the paths of those
    expressions that read something not upstream, by the rule written out plainly."""
    units: list[tuple[str, list[str]]] = []  # (outer work or loop name, its works)
    for u in range(draw(st.integers(1, 7))):
        if draw(st.booleans()):
            units.append((f"L{u}", [f"L{u}w{k}" for k in range(draw(st.integers(1, 3)))]))
        else:
            units.append((f"w{u}", [f"w{u}"]))
    loop_names = {name for name, ws in units if name.startswith("L")}
    loop_of = {w: name for name, ws in units if name in loop_names for w in ws}
    all_works = [w for _, ws in units for w in ws]
    outer_needs: dict[str, set[str]] = defaultdict(set)
    inner_needs: dict[str, set[str]] = defaultdict(set)
    works: dict[str, dict[str, Any]] = {}
    loops: list[dict[str, Any]] = []
    for i, (name, ws) in enumerate(units):
        earlier = [n for n, _ in units[:i]]
        for k, w in enumerate(ws):
            after = [n for n in earlier if draw(st.integers(0, 2)) == 0]
            outer_needs[name] |= set(after)
            if name in loop_names:
                inner = [v for v in ws[:k] if draw(st.booleans())]
                inner_needs[w] |= set(inner)
                after += inner
            works[w] = {"name": w, "noop": True, "after": after}
        if name in loop_names:
            loops.append({"name": name, "works": ws, "max_iterations": 2})

    def read(target: str) -> str:
        return (
            f"loops.{target}.iteration > 0"
            if target in loop_names
            else f"works.{target}.status == 'succeeded'"
        )

    def outer_up(node: str) -> set[str]:
        out: set[str] = set()
        for n in ancestors(node, outer_needs):
            out |= set(dict(units)[n]) if n in loop_names else {n}
        return out

    def allowed(up: set[str], target: str) -> bool:
        if target in loop_names:
            return set(dict(units)[target]) <= up
        return target in up

    targets = sorted(all_works) + sorted(loop_names)
    bad: set[str] = set()
    for i, w in enumerate(all_works):
        target = draw(st.sampled_from(targets))
        works[w]["when"] = read(target)
        lp = loop_of.get(w)
        up = outer_up(lp) | ancestors(w, inner_needs) if lp else outer_up(w)
        if not allowed(up, target) and target != lp:  # the loop around it: its current state
            bad.add(f"works[{i}]({w}).when")
    for j, loop in enumerate(loops):
        own = set(loop["works"])
        until, first = draw(st.sampled_from(targets)), draw(st.sampled_from(targets))
        loop["until"] = read(until)
        loop["variables"] = {"v": "${" + read(first) + "}"}
        up = outer_up(loop["name"])
        if not allowed(up | own, until):
            bad.add(f"loops[{j}]({loop['name']}).until")
        if not allowed(up, first):
            bad.add(f"loops[{j}]({loop['name']}).variables")
    raw: dict[str, Any] = {"name": "random", "works": [works[w] for w in all_works]}
    if loops:
        raw["loops"] = loops
    return raw, bad


@PROPERTY
@given(templates())
def test_expressions_may_read_exactly_what_is_upstream(
    case: tuple[dict[str, Any], set[str]],
) -> None:
    raw, bad = case
    try:
        analyse(parse_template(raw))
        found: set[str] = set()
    except TemplateError as exc:
        assert all("is not upstream" in msg for _, msg in exc.problems), exc.problems
        found = {path for path, _ in exc.problems}
    assert found == bad


# --- linear time at scale ------------------------------------------------------------------
# Each of these took minutes or hours before (validation compared every work with every
# other one, and kept each work's whole ancestry); the timeout is a bound, not a figure.

N = 10_000


def chain(n: int) -> dict[str, Any]:
    works: list[dict[str, Any]] = [{"name": "w0", "noop": True}]
    for i in range(1, n):
        works.append(
            {
                "name": f"w{i}",
                "noop": True,
                "after": [f"w{i - 1}"],
                "when": f"works.w0.status == 'succeeded' and works.w{i - 1}.outputs != 1",
            }
        )
    return {"name": "chain", "works": works}


def layered(n: int, width: int = 100) -> dict[str, Any]:
    works: list[dict[str, Any]] = []
    for i in range(n):
        layer, k = divmod(i, width)
        w: dict[str, Any] = {"name": f"w{i}", "noop": True}
        if layer:
            base = (layer - 1) * width
            w["after"] = sorted({f"w{base + k}", f"w{base + (k + 1) % width}"})
            w["parameters"] = {"x": f"${{works.w{k % width}.outputs}}"}  # a distant one
        works.append(w)
    return {"name": "layered", "works": works}


def looped(n: int) -> dict[str, Any]:
    works, loops = [], []
    for k in range(n // 2):
        works += [
            {"name": f"a{k}", "noop": True},
            {"name": f"b{k}", "noop": True, "after": [f"a{k}"], "when": f"works.a{k}.outputs"},
        ]
        loop: dict[str, Any] = {
            "name": f"l{k}",
            "works": [f"a{k}", f"b{k}"],
            "until": f"works.b{k}.status == 'succeeded'",
            "max_iterations": 2,
        }
        if k:
            loop["after"] = [f"l{k - 1}"]
            loop["variables"] = {"x": "${loops.l0.iteration}"}
        loops.append(loop)
    return {"name": "loops", "works": works, "loops": loops}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("make", [chain, layered, looped], ids=["chain", "layered", "loops"])
def test_a_large_template_is_checked_and_planned(make: Any) -> None:
    from orchid.core.plan import Planner

    t = parse_template(make(N))
    a = analyse(t)
    assert len(a.order) == len(t.works)
    planner = Planner(t, a)
    waiting = [WorkState(i + 1, w.name, 0, WorkStatus.WAITING) for i, w in enumerate(t.works)]
    state = RunState(1, t.name, WorkflowStatus.RUNNING, {}, {}, waiting)
    assert planner.decide(state) is not None
    half = {w.name for w in t.works[: N // 2]}
    state = RunState(
        1,
        t.name,
        WorkflowStatus.RUNNING,
        {},
        {},
        [
            WorkState(w.id, w.name, 0, WorkStatus.SUCCEEDED if w.name in half else w.status)
            for w in waiting
        ],
    )
    planner.decide(state)


@pytest.mark.timeout(120)
def test_many_mistakes_in_a_large_template_are_reported_quickly() -> None:
    raw = chain(N)
    for w in raw["works"][1:]:
        w["after"] = [w["after"][0] + "x"]  # no such work: each would be compared with all
        w["when"] = "works.nowhere_to_be_found.status == 'succeeded'"
    with pytest.raises(TemplateError) as caught:
        analyse(parse_template(raw))
    assert len(caught.value.problems) >= N - 1


@pytest.mark.timeout(120)
def test_a_work_with_many_listed_jobs_is_checked() -> None:
    jobs = [{"name": "j0"}] + [
        {"name": f"j{i}", "parents": [f"j{i - 1}"]} for i in range(1, 50_000)
    ]
    jobs[-1]["parents"] = ["j0", "nope"]
    raw = {"name": "jobs", "works": [{"name": "w", "noop": True, "jobs": jobs}]}
    with pytest.raises(TemplateError) as caught:
        analyse(parse_template(raw))
    assert caught.value.problems[0][0] == "works[0](w).jobs[49999].parents[1]"


def test_the_template_answers_by_name() -> None:
    t = parse_template(looped(6))
    assert t.work("b2").after == ["a2"]
    assert t.loop_of("b2") is not None and t.loop_of("b2").name == "l2"
    assert t.loop_of("nowhere") is None
    assert list(t.loops_by_name()) == ["l0", "l1", "l2"]
    with pytest.raises(KeyError, match="no work 'zz'"):
        t.work("zz")
    # a template compares by its fields, not by what it has looked up
    assert t == parse_template(looped(6))
    assert list(itertools.islice(t.positions.values(), 3)) == [0, 1, 2]


# --- every problem in one pass --------------------------------------------------------------


def problems_of(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(TemplateError) as caught:
        analyse(parse_template(raw))
    return caught.value.problems


def test_a_model_error_does_not_hide_the_structural_problems() -> None:
    raw: dict[str, Any] = {
        "name": "t",
        "works": [
            {"command": "echo"},  # no name
            {"name": "a", "command": "x", "colour": "red"},  # unknown key
            {"name": "a"},  # a name twice, and no payload
            {"name": "b", "noop": True, "after": ["b"]},
            {
                "name": "c",
                "noop": True,
                "jobs": [{"name": "j1", "parents": ["j2"]}, {"name": "j2", "parents": ["j1"]}],
            },
            {"name": "d", "noop": True, "jobs": [{"name": "k"}, {"name": "k", "parents": ["z"]}]},
            "not a work",
        ],
    }
    found = problems_of(raw)
    paths = [p for p, _ in found]
    assert "works[0].name" in paths and "works[1](a).colour" in paths  # the model's
    assert ("works[2](a).name", "'a' is already the name of works[1]") in found
    assert any(p == "works[2](a)" and "exactly one payload" in m for p, m in found)
    assert ("works[3](b).after[0]", "'b' cannot wait for itself") in found
    assert any(p == "works" and "job parents make a cycle" in m for p, m in found)
    assert any(p == "works[5](d).jobs[1].name" and "twice" in m for p, m in found)
    assert any(p == "works[5](d).jobs[1].parents[0]" and "no job 'z'" in m for p, m in found)
    assert len(found) == len(set(found))  # each problem once


def test_after_names_nothing_or_makes_a_cycle_next_to_a_model_error() -> None:
    raw: dict[str, Any] = {
        "name": "t",
        "retries": "many",  # a model error
        "works": [
            {"name": "a", "noop": True, "after": ["b"]},
            {"name": "b", "noop": True, "after": ["a", "nope"]},
        ],
    }
    found = problems_of(raw)
    assert any(
        p == "works[1](b).after[1]" and "no work or loop is named 'nope'" in m for p, m in found
    )
    assert any(p == "works" and "makes a cycle" in m for p, m in found)
    # with a nameless work, a name `after` does not know may be that work's: not reported
    raw["works"].append({"noop": True})
    assert not any("'nope'" in m for _, m in problems_of(raw))


def test_a_duplicate_name_does_not_hide_job_cycles_nor_bad_after() -> None:
    raw: dict[str, Any] = {
        "name": "t",
        "works": [
            {"name": "a", "noop": True},
            {"name": "a", "noop": True},
            {"name": "b", "after": ["zz"]},  # no payload
            {
                "name": "c",
                "noop": True,
                "jobs": [{"name": "j1", "parents": ["j2"]}, {"name": "j2", "parents": ["j1"]}],
            },
        ],
    }
    found = problems_of(raw)
    assert any(p == "works[1](a).name" for p, _ in found)
    assert any(p == "works[2](b)" and "payload" in m for p, m in found)
    assert any(p == "works[2](b).after[0]" and "'zz'" in m for p, m in found)
    assert any("job parents make a cycle" in m for _, m in found)


@pytest.mark.timeout(120)
def test_a_large_template_with_a_model_error_is_checked_in_one_pass() -> None:
    raw = chain(N)
    raw["works"][0]["colour"] = "red"
    for w in raw["works"][1:]:
        w["after"] = [w["after"][0] + "x"]
    found = problems_of(raw)
    assert len(found) >= N


# --- maps of known size ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("map_", "field", "what"),
    [
        (
            {"product": {"a": "${range(1001)}", "b": "${range(0, 1000)}"}},
            "product",
            "1,001,000 jobs",
        ),
        ({"zip": {"a": "${range(2000000)}", "b": "${range(2000000)}"}}, "zip.a", "expr_max_items"),
        ({"product": {"a": list(range(1001)), "b": list(range(1000))}}, "product", "jobs"),
        ({"items": "${range(0, 3000000, 2)}"}, "items", "1,500,000 items"),
    ],
)
def test_a_map_known_to_be_too_large_is_a_validation_error(
    map_: dict[str, Any], field: str, what: str
) -> None:
    from orchid.core.limits import DEFAULT
    from orchid.core.rawcheck import size_problems

    raw = {"name": "t", "works": [{"name": "w", "command": "echo {a}", "map": map_}]}
    t = parse_template(raw)
    analyse(t)
    found = size_problems(t, DEFAULT)
    assert any(p == f"works[0](w).map.{field}" and what in m for p, m in found), found


def test_maps_of_unknown_or_allowed_size_pass() -> None:
    from orchid.core.limits import DEFAULT, Limits
    from orchid.core.rawcheck import size_problems

    raw = {
        "name": "t",
        "parameters": {"n": 5},
        "works": [
            {"name": "w", "command": "echo {a}", "map": {"product": {"a": "${range(params.n)}"}}},
            {"name": "v", "command": "echo {a}", "map": {"zip": {"a": "${range(1000)}"}}},
            {
                "name": "u",
                "command": "echo {a}",
                "map": {"product": {"a": [], "b": "${range(10**9)}"}},
            },
        ],
    }
    t = parse_template(raw)
    assert size_problems(t, DEFAULT) == []
    small = Limits(expr_max_items=100)
    assert [p for p, _ in size_problems(t, small)] == ["works[1](v).map.zip.a"]
