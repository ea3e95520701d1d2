"""Nested workflows in the template language: their checks (each with its path) and their
expansion into the flat template the engine runs."""

from __future__ import annotations

from typing import Any

import pytest

from orchid.core import nested
from orchid.core.template import json_schema, parse_template
from orchid.core.validate import analyse
from orchid.errors import TemplateError


def problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(TemplateError) as info:
        analyse(parse_template(raw))
    return info.value.problems


def sub(works: list[dict[str, Any]], **work: Any) -> dict[str, Any]:
    return {"name": "sub", "workflow": {"works": works}, **work}


def test_the_expansion_names_inner_works_and_keeps_the_order() -> None:
    raw = {
        "name": "outer",
        "works": [
            {"name": "prep", "noop": True},
            sub(
                [
                    {"name": "a", "noop": True},
                    {"name": "b", "noop": True, "after": ["a"]},
                    {"name": "c", "noop": True},
                ],
                after=["prep"],
            ),
            {"name": "post", "noop": True, "after": ["sub"]},
        ],
    }
    a = analyse(parse_template(raw))
    assert a.flat is not None
    flat = {w.name: (w.after, w.trigger) for w in a.flat.works}
    assert flat == {
        "prep": ([], "all_success"),
        "sub.a": (["prep"], "all_success"),  # inherits the nested work's `after`
        "sub.b": (["sub.a"], "all_success"),
        "sub.c": (["prep"], "all_success"),
        "sub": (["sub.a", "sub.b", "sub.c"], "all_done"),  # the join: after all of them
        "post": (["sub"], "all_success"),
    }
    assert a.order.index("sub.b") < a.order.index("sub") < a.order.index("post")
    scope = a.scopes["sub"]
    assert scope.after == ("prep",) and scope.roots == {"sub.a", "sub.c"}
    assert scope.works == {"a": "sub.a", "b": "sub.b", "c": "sub.c"}


def test_a_template_without_nested_workflows_is_not_expanded() -> None:
    a = analyse(parse_template({"name": "x", "works": [{"name": "a", "noop": True}]}))
    assert a.flat is None and a.scopes == {}


def test_listed_jobs_parents_are_renamed_with_their_works() -> None:
    raw = {
        "name": "outer",
        "works": [
            sub(
                [
                    {"name": "a", "noop": True, "jobs": [{"name": "j1"}]},
                    {"name": "b", "noop": True, "jobs": [{"name": "j2", "parents": ["a/j1"]}]},
                ]
            )
        ],
    }
    a = analyse(parse_template(raw))
    assert a.flat is not None
    b = a.flat.work("sub.b")
    assert isinstance(b.jobs, list) and b.jobs[0].parents == ["sub.a/j1"]
    assert a.job_upstream["sub.b"] == {"sub.a"}


def test_problems_inside_a_nested_workflow_name_their_path() -> None:
    raw = {
        "name": "outer",
        "parameters": {"n": 1},
        "works": [
            {"name": "prep", "noop": True},
            sub(
                [
                    {"name": "a", "noop": True, "after": ["prep"]},  # outer names are not seen
                    {"name": "b", "when": "works.prep.status == 'x' and params.n > 0"},
                ],
                parameters={"zz": 1},
                retries=2,
            ),
            {"name": "post", "noop": True, "after": ["sub"], "when": "works.sub.outputs > 1"},
        ],
    }
    got = dict(problems(raw))
    where = "works[1](sub).workflow.works"
    assert "no work or loop is named 'prep'" in got[f"{where}[0](a).after[0]"]
    assert "no work is named 'prep'" in got[f"{where}[1](b).when"]
    assert "needs exactly one payload" in got[f"{where}[1](b)"]
    assert "cannot set `retries`" in got["works[1](sub).retries"]
    assert "has no parameter 'zz'" in got["works[1](sub).parameters.zz"]
    assert "read works.sub.status" in got["works[2](post).when"]


def test_inner_parameters_are_the_nested_workflows_own() -> None:
    raw = {
        "name": "outer",
        "parameters": {"n": 1},
        "works": [
            {
                "name": "sub",
                "parameters": {"k": "${params.n}"},
                "workflow": {
                    "parameters": {"k": 0},
                    "works": [{"name": "a", "noop": True, "parameters": {"x": "${params.n}"}}],
                },
            }
        ],
    }
    ((path, message),) = problems(raw)
    assert path == "works[0](sub).workflow.works[0](a).parameters"
    assert "no workflow parameter 'n'" in message and "known: k" in message


def test_nesting_is_bounded() -> None:
    inner: dict[str, Any] = {"name": "leaf", "noop": True}
    for level in range(nested.MAX_NESTING + 1):
        inner = {"name": f"n{level}", "workflow": {"works": [inner]}}
    got = problems({"name": "deep", "works": [inner]})
    assert len(got) == 1
    path, message = got[0]
    assert path.count(".workflow") == nested.MAX_NESTING + 1
    assert f"more than {nested.MAX_NESTING} deep" in message


def test_a_nested_workflows_loop_inside_an_outer_loop_is_a_loop_inside_it() -> None:
    raw = {
        "name": "outer",
        "works": [
            {
                "name": "sub",
                "workflow": {
                    "works": [
                        {"name": "a", "noop": True},
                        {"name": "b", "noop": True},
                        {"name": "c", "noop": True, "after": ["l"]},
                    ],
                    "loops": [{"name": "l", "works": ["a"], "until": "true", "max_iterations": 2}],
                },
            }
        ],
        "loops": [{"name": "outer_loop", "works": ["sub"], "until": "true", "max_iterations": 2}],
    }
    a = analyse(parse_template(raw))
    assert a.flat is not None
    loops = {lp.name: lp.works for lp in a.flat.loops}
    # the outer loop repeats the nested workflow's works and its loop, which keeps its work
    assert loops == {"sub.l": ["sub.a"], "outer_loop": ["sub.b", "sub.c", "sub.l", "sub"]}
    assert a.order.index("sub.a") < a.order.index("sub.c") < a.order.index("sub")


def test_a_nested_workflows_loops_count_the_loops_around_it() -> None:
    """Loops nest 8 deep: a nested workflow inside 8 loops cannot have a loop."""
    names = [f"l{k}" for k in range(8)]
    once = {"until": "true", "max_iterations": 1}
    raw = {
        "name": "outer",
        "works": [
            {
                "name": "sub",
                "workflow": {
                    "works": [{"name": "a", "noop": True}],
                    "loops": [{"name": "l", "works": ["a"], "until": "true", "max_iterations": 2}],
                },
            }
        ],
        "loops": [
            {"name": n, "works": [names[k + 1] if k + 1 < 8 else "sub"], **once}
            for k, n in enumerate(names)
        ],
    }
    ((path, message),) = problems(raw)
    assert path == "works[0](sub).workflow.loops[0](l)"
    assert "is 9 loops deep" in message and "at most 8 deep" in message
    raw["loops"] = raw["loops"][1:]
    raw["loops"][-1]["works"] = ["sub"]
    assert analyse(parse_template(raw)).flat is not None  # 7 around it: 8 deep


def test_a_nested_workflow_in_a_loop_repeats_all_its_works() -> None:
    raw = {
        "name": "outer",
        "works": [sub([{"name": "a", "noop": True}, {"name": "b", "noop": True, "after": ["a"]}])],
        "loops": [{"name": "again", "works": ["sub"], "until": "true", "max_iterations": 2}],
    }
    a = analyse(parse_template(raw))
    assert a.flat is not None
    assert a.flat.loops[0].works == ["sub.a", "sub.b", "sub"]


def test_jobs_file_is_not_for_nested_works() -> None:
    got = problems(
        {"name": "o", "works": [sub([{"name": "a", "noop": True, "jobs": "from_file"}])]}
    )
    assert [p for p, _ in got] == ["works[0](sub).workflow.works[0](a).jobs"]


def test_the_schema_describes_nested_workflows() -> None:
    schema = json_schema()
    assert "workflow" in schema["$defs"]["WorkSpec"]["properties"]
    assert set(schema["$defs"]["NestedWorkflow"]["properties"]) == {
        "description",
        "parameters",
        "works",
        "loops",
    }


def test_an_unknown_key_in_a_nested_workflow_is_named() -> None:
    with pytest.raises(TemplateError) as info:
        parse_template({"name": "o", "works": [sub([{"name": "a", "noop": True, "oops": 1}])]})
    assert [p for p, _ in info.value.problems] == ["works[0](sub).workflow.works[0](a).oops"]
