"""Templates: structure (parse_template), cross-checks (analyse), decoding, the JSON Schema.

Every bad template asserts the exact path of the problem and the gist of its message,
so a user can find and fix the field at fault.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from orchid.core.template import NAME_PATTERN, Template, decode, json_schema, parse_template
from orchid.core.validate import Analysis, analyse
from orchid.errors import InvalidInput, TemplateError


def W(name: str, **fields: Any) -> dict[str, Any]:
    """A work with a noop payload unless the test gives another."""
    return {"name": name, "noop": True, **fields}


def L(name: str, works: list[str], **fields: Any) -> dict[str, Any]:
    return {"name": name, "works": works, "until": "true", "max_iterations": 3, **fields}


def compile_raw(raw: Any) -> tuple[Template, Analysis]:
    """What orchid.engine.templates.compile_template does, without the engine."""
    t = parse_template(raw)
    return t, analyse(t)


def problems(raw: Any) -> list[tuple[str, str]]:
    with pytest.raises(TemplateError) as info:
        compile_raw(raw)
    assert info.value.problems, "a TemplateError must carry its problems"
    return info.value.problems


def only(raw: Any) -> tuple[str, str]:
    """The single problem of a template that has exactly one."""
    found = problems(raw)
    assert len(found) == 1, found
    return found[0]


GOOD: dict[str, Any] = {
    "name": "demo",
    "description": "a bit of everything",
    "parameters": {"n": 3, "label": "x"},
    "defaults": {"retries": 1, "retry_delay": 0.5},
    "works": [
        {"name": "prep", "command": "echo ${params.label}", "parameters": {"n": "${params.n}"}},
        {
            "name": "square",
            "function": "pkg.mod:square",
            "after": ["prep"],
            "map": {"items": [{"x": 1}, {"x": 2}]},
            "when": "works.prep.status == 'succeeded'",
            "retries": 2,
        },
        W("sum", after=["square"], parameters={"values": "${works.square.outputs}"}),
        W("train", parameters={"lr": "${loop.vars.lr}"}),
        W("report", after=["fit"], trigger="all_done"),
        W("static", jobs=[{"name": "j1"}, {"name": "j2", "parents": ["j1"]}]),
    ],
    "loops": [
        {
            "name": "fit",
            "works": ["train"],
            "after": ["sum"],
            "until": "works.train.outputs.loss < 0.1",
            "max_iterations": 5,
            "variables": {"lr": 0.1},
            "next": {"lr": "loop.vars.lr / 2"},
        }
    ],
}


# --- good templates ----------------------------------------------------------------------


def test_good_template_passes_and_is_analysed() -> None:
    t, a = compile_raw(GOOD)
    assert t.name == "demo"
    assert [w.name for w in t.works] == ["prep", "square", "sum", "train", "report", "static"]
    assert a.order.index("prep") < a.order.index("square") < a.order.index("sum")
    assert a.order.index("sum") < a.order.index("train") < a.order.index("report")
    assert set(a.order) == {w.name for w in t.works}
    assert a.needs["square"] == {"prep"}
    assert a.needs["fit"] == {"sum"}
    assert a.needs["report"] == {"fit"}
    # loops are expanded: `report` may read the loop's works and everything before it
    assert a.upstream["report"] == {"prep", "square", "sum", "train"}
    assert a.upstream["train"] == {"prep", "square", "sum"}
    assert a.upstream["fit"] == {"prep", "square", "sum", "train"}
    assert a.read_outputs == {"square", "train"}
    assert set(a.loops) == {"fit"}


def test_defaults_fill_in() -> None:
    t = parse_template({"name": "x", "works": [W("a")]})
    w = t.works[0]
    assert w.trigger == "all_success"
    assert w.otherwise == "skip"
    assert w.on_failure == "fail"
    assert w.retries is None and w.retry_delay is None
    assert w.after == [] and w.parameters == {} and w.map is None and w.jobs is None
    assert w.resources.cores == 1 and w.resources.gpus == 0
    assert t.defaults.retries == 0 and t.defaults.retry_delay == 1.0
    assert t.loops == [] and t.jobs_file is None


def test_template_helpers() -> None:
    t, _ = compile_raw(GOOD)
    assert t.work("sum").after == ["square"]
    loop = t.loop_of("train")
    assert loop is not None and loop.name == "fit"
    assert t.loop_of("sum") is None
    assert list(t.loops_by_name()) == ["fit"]
    assert [w.name for w in t.static_works()] == ["static"]


def test_shell_string_command_is_split() -> None:
    t = parse_template(
        {"name": "x", "works": [{"name": "a", "command": "python -c 'print(1)' --tag \"a b\""}]}
    )
    assert t.works[0].command == ["python", "-c", "print(1)", "--tag", "a b"]


def test_list_command_is_kept_as_is() -> None:
    t = parse_template({"name": "x", "works": [{"name": "a", "command": ["echo", "a b", "{x}"]}]})
    assert t.works[0].command == ["echo", "a b", "{x}"]


def test_templates_are_frozen() -> None:
    t = parse_template({"name": "x", "works": [W("a")]})
    with pytest.raises(Exception, match="frozen"):
        t.name = "y"  # type: ignore[misc]


def test_json_schema_describes_templates() -> None:
    schema = json_schema()
    json.dumps(schema)  # plain JSON
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["title"] == "Orchid workflow template"
    assert schema["type"] == "object"
    assert {"name", "works"} <= set(schema["required"])
    assert {"name", "works", "loops", "parameters", "jobs_file"} <= set(schema["properties"])
    assert schema["properties"]["works"]["type"] == "array"
    assert schema["additionalProperties"] is False
    defs = schema["$defs"]
    work = defs["WorkSpec"]
    assert work["additionalProperties"] is False
    assert {"after", "when", "map", "trigger", "retries"} <= set(work["properties"])
    assert work["properties"]["name"]["pattern"] == NAME_PATTERN

    # every reference resolves inside the schema
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(schema):
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in defs


# --- structure: parse_template -----------------------------------------------------------


def test_missing_name() -> None:
    assert only({"works": [W("a")]}) == ("name", "is required but missing")


def test_missing_works() -> None:
    assert only({"name": "x"}) == ("works", "is required but missing")


def test_empty_works() -> None:
    path, msg = only({"name": "x", "works": []})
    assert path == "works"
    assert "at least 1 item" in msg


def test_unknown_field_typo() -> None:
    path, msg = only({"name": "x", "works": [W("a"), W("square", retires=2)]})
    assert path == "works[1](square).retires"
    assert "not a known field" in msg
    assert "spelling" in msg


def test_unknown_top_level_field() -> None:
    path, msg = only({"name": "x", "works": [W("a")], "work": []})
    assert path == "work"
    assert "not a known field" in msg


def test_wrong_type() -> None:
    path, msg = only({"name": "x", "works": [W("a"), W("square", retries="two")]})
    assert path == "works[1](square).retries"
    assert "valid integer" in msg
    assert '"two"' in msg  # shows what it got


def test_negative_retries() -> None:
    path, msg = only({"name": "x", "works": [W("a"), W("square", retries=-1)]})
    assert path == "works[1](square).retries"
    assert "greater than or equal to 0" in msg
    assert "got -1" in msg


def test_too_many_retries() -> None:
    path, msg = only({"name": "x", "works": [W("square", retries=1000)]})
    assert path == "works[0](square).retries"
    assert "less than or equal to 100" in msg


def test_bad_work_name() -> None:
    path, msg = only({"name": "x", "works": [W("1abc")]})
    assert path == "works[0](1abc).name"
    assert '"1abc"' in msg
    assert "pattern" in msg


@pytest.mark.parametrize("name", ["", "a b", "a/b", "a.b", "x" * 101, "é"])
def test_bad_names_are_refused(name: str) -> None:
    path, _ = only({"name": "x", "works": [W(name)]})
    assert path.startswith("works[0]")
    assert path.endswith(".name")


@pytest.mark.parametrize("name", ["a", "_a", "A-1", "work_2-b", "x" * 100])
def test_good_names_are_accepted(name: str) -> None:
    assert parse_template({"name": name, "works": [W(name)]}).works[0].name == name


def test_pattern_message_shows_the_pattern_unchanged() -> None:
    _, msg = only({"name": "x", "works": [W("1abc")]})
    # the pattern shown must be the real one: '[a-za-z_]' wrongly says capitals are not allowed
    assert NAME_PATTERN in msg


def test_bad_trigger_lists_the_choices() -> None:
    path, msg = only({"name": "x", "works": [W("a", trigger="any")]})
    assert path == "works[0](a).trigger"
    for choice in ("all_success", "all_done", "one_success", "one_failed"):
        assert choice in msg


def test_bad_function_reference() -> None:
    path, msg = only({"name": "x", "works": [{"name": "a", "function": "no_colon"}]})
    assert path == "works[0](a).function"
    assert "pattern" in msg


def test_nested_field_path() -> None:
    path, msg = only({"name": "x", "works": [W("a"), W("b", resources={"cores": 0})]})
    assert path == "works[1](b).resources.cores"
    assert "greater than or equal to 1" in msg


def test_loop_paths_name_the_loop() -> None:
    raw = {"name": "x", "works": [W("a")], "loops": [L("again", ["a"], max_iterations=0)]}
    path, msg = only(raw)
    assert path == "loops[0](again).max_iterations"
    assert "greater than or equal to 1" in msg


def test_unsplittable_shell_command() -> None:
    path, msg = only({"name": "x", "works": [{"name": "a", "command": "echo 'open"}]})
    assert path == "works[0](a).command"
    assert "cannot split the command" in msg


def test_static_job_with_unknown_field() -> None:
    path, msg = only({"name": "x", "works": [W("a", jobs=[{"name": "j", "parent": ["k"]}])]})
    assert path == "works[0](a).jobs[0](j).parent"
    assert "not a known field" in msg


def test_static_job_with_unknown_field_is_reported() -> None:
    found = problems({"name": "x", "works": [W("a", jobs=[{"name": "j", "parent": ["k"]}])]})
    assert any(p.endswith(".jobs[0](j).parent") and "not a known field" in m for p, m in found)


@pytest.mark.parametrize(
    ("raw", "kind"), [([1, 2], "list"), ("text", "str"), (42, "int"), (None, "NoneType")]
)
def test_top_level_must_be_a_mapping(raw: Any, kind: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse_template(raw)
    assert info.value.problems == [
        ("", f"a template is a mapping with `name` and `works`; got a {kind}")
    ]
    assert "<template>:" in str(info.value)


def test_several_structure_problems_at_once() -> None:
    raw = {
        "name": "x y",
        "works": [W("a", retires=1), W("b", retries="two"), W("c", trigger="sometimes")],
    }
    found = problems(raw)
    assert [p for p, _ in found] == [
        "name",
        "works[0](a).retires",
        "works[1](b).retries",
        "works[2](c).trigger",
    ]
    with pytest.raises(TemplateError, match=r"invalid template \(4 problems\)"):
        parse_template(raw)


def test_template_error_is_invalid_input_with_one_line_per_problem() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_template({"works": [W("a", retires=1)]})
    text = str(info.value)
    assert text.splitlines()[0] == "invalid template (2 problems):"
    assert "  name: is required but missing" in text
    assert "  works[0](a).retires: is not a known field" in text


# --- payloads and maps -------------------------------------------------------------------


def test_no_payload() -> None:
    path, msg = only({"name": "x", "works": [{"name": "a"}]})
    assert path == "works[0](a)"
    assert "exactly one payload" in msg
    assert "got none" in msg


def test_two_payloads() -> None:
    path, msg = only({"name": "x", "works": [{"name": "a", "noop": True, "command": "echo hi"}]})
    assert path == "works[0](a)"
    assert "exactly one payload" in msg
    assert "command and noop" in msg


def test_empty_command() -> None:
    found = problems({"name": "x", "works": [{"name": "a", "command": []}]})
    assert ("works[0](a).command", "is empty; give the program and its arguments") in found


def test_map_with_both_items_and_product() -> None:
    raw = {"name": "x", "works": [W("a", map={"items": [{"a": 1}], "product": {"x": [1]}})]}
    path, msg = only(raw)
    assert path == "works[0](a).map"
    assert "exactly one of `items`, `product` or `zip`" in msg


def test_empty_map() -> None:
    path, msg = only({"name": "x", "works": [W("a", map={})]})
    assert path == "works[0](a).map"
    assert "exactly one of" in msg


def test_zip_lists_of_different_lengths() -> None:
    raw = {"name": "x", "works": [W("a", map={"zip": {"x": [1, 2], "y": [1]}})]}
    path, msg = only(raw)
    assert path == "works[0](a).map.zip"
    assert "same length" in msg
    assert "'x': 2" in msg and "'y': 1" in msg


def test_zip_with_a_binding_is_checked_at_run_time_only() -> None:
    raw = {
        "name": "x",
        "parameters": {"ys": [1]},
        "works": [W("a", map={"zip": {"x": [1, 2], "y": "${params.ys}"}})],
    }
    compile_raw(raw)


def test_map_and_jobs_together() -> None:
    path, msg = only({"name": "x", "works": [W("a", map={"items": [{}]}, jobs=[{"name": "j"}])]})
    assert path == "works[0](a).map"
    assert "cannot be used with `jobs`" in msg


# --- names and `after` -------------------------------------------------------------------


def test_duplicate_work_names() -> None:
    path, msg = only({"name": "x", "works": [W("a"), W("b"), W("a")]})
    assert path == "works[2](a).name"
    assert "'a' is already the name of works[0]" in msg


def test_loop_named_like_a_work() -> None:
    path, msg = only({"name": "x", "works": [W("a")], "loops": [L("a", ["a"])]})
    assert path == "loops[0](a).name"
    assert "already the name of works[0]" in msg


def test_after_names_unknown_work_with_suggestion() -> None:
    path, msg = only({"name": "x", "works": [W("square"), W("b", after=["sqaure"])]})
    assert path == "works[1](b).after[0]"
    assert "no work or loop is named 'sqaure'" in msg
    assert "did you mean 'square'?" in msg


def test_after_names_unknown_work_without_suggestion() -> None:
    path, msg = only({"name": "x", "works": [W("a"), W("b", after=["zzz"])]})
    assert path == "works[1](b).after[0]"
    assert "'zzz'" in msg
    assert "did you mean" not in msg


def test_after_itself() -> None:
    path, msg = only({"name": "x", "works": [W("a", after=["a"])]})
    assert path == "works[0](a).after[0]"
    assert "cannot wait for itself" in msg


def test_cycle_in_after_names_the_cycle_and_suggests_loops() -> None:
    raw = {"name": "x", "works": [W("a", after=["c"]), W("b", after=["a"]), W("c", after=["b"])]}
    path, msg = only(raw)
    assert path == "works"
    assert "cycle" in msg
    # the cycle is named, whichever node it starts from
    cycle = msg.split("cycle: ", 1)[1].split(";", 1)[0].split(" -> ")
    assert len(cycle) == 4 and cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}
    for x, y in itertools.pairwise(cycle):
        assert x in {"a": ["c"], "b": ["a"], "c": ["b"]}[y]  # each step is a real `after` edge
    assert "loops" in msg


def test_cycle_of_two_with_unrelated_works() -> None:
    raw = {"name": "x", "works": [W("ok"), W("a", after=["b"]), W("b", after=["a"])]}
    path, msg = only(raw)
    assert path == "works"
    assert "a -> b -> a" in msg or "b -> a -> b" in msg


def test_cycle_inside_a_loop() -> None:
    raw = {
        "name": "x",
        "works": [W("a", after=["b"]), W("b", after=["a"])],
        "loops": [L("again", ["a", "b"])],
    }
    path, msg = only(raw)
    assert path == "loops[0](again).works"
    assert "cycle" in msg


def test_after_pointing_inside_a_loop_from_outside() -> None:
    raw = {"name": "x", "works": [W("a"), W("b", after=["a"])], "loops": [L("again", ["a"])]}
    path, msg = only(raw)
    assert path == "works[1](b).after[0]"
    assert "'a' is inside loop 'again'" in msg
    assert "after: [again]" in msg  # says to depend on the loop


def test_work_inside_a_loop_waiting_for_its_loop() -> None:
    raw = {"name": "x", "works": [W("a", after=["again"])], "loops": [L("again", ["a"])]}
    path, msg = only(raw)
    assert path == "works[0](a).after[0]"
    assert "inside loop 'again'" in msg


def test_loop_after_unknown_work() -> None:
    raw = {"name": "x", "works": [W("a")], "loops": [L("again", ["a"], after=["b"])]}
    path, msg = only(raw)
    assert path == "loops[0](again).after[0]"
    assert "no work or loop is named 'b'" in msg


def test_after_may_name_a_loop() -> None:
    raw = {"name": "x", "works": [W("a"), W("b", after=["again"])], "loops": [L("again", ["a"])]}
    _, a = compile_raw(raw)
    assert a.needs["b"] == {"again"}
    assert a.upstream["b"] == {"a"}


def test_loop_waits_for_what_its_works_wait_for() -> None:
    raw = {"name": "x", "works": [W("pre"), W("a", after=["pre"])], "loops": [L("again", ["a"])]}
    _, a = compile_raw(raw)
    assert a.needs["again"] == {"pre"}
    assert a.order == ("pre", "a")


# --- loops -------------------------------------------------------------------------------


def test_loop_names_unknown_work() -> None:
    raw = {"name": "x", "works": [W("train")], "loops": [L("again", ["train", "trian2"])]}
    path, msg = only(raw)
    assert path == "loops[0](again).works[1]"
    assert "no work or loop is named 'trian2'" in msg
    assert "did you mean 'train'?" in msg


def test_work_in_two_loops() -> None:
    raw = {"name": "x", "works": [W("a")], "loops": [L("one", ["a"]), L("two", ["a"])]}
    path, msg = only(raw)
    assert path == "loops[1](two).works[0]"
    assert "already in loop 'one'" in msg


def test_loop_next_for_undeclared_variable() -> None:
    raw = {
        "name": "x",
        "works": [W("a")],
        "loops": [L("again", ["a"], variables={"x": 1}, next={"y": "loop.vars.x + 1"})],
    }
    path, msg = only(raw)
    assert path == "loops[0](again).next.y"
    assert "'y' is not one of the loop's `variables`" in msg


def test_loop_without_until() -> None:
    raw = {
        "name": "x",
        "works": [W("a")],
        "loops": [{"name": "again", "works": ["a"], "max_iterations": 2}],
    }
    assert only(raw) == ("loops[0](again).until", "is required but missing")


def test_loop_with_no_works() -> None:
    path, msg = only({"name": "x", "works": [W("a")], "loops": [L("again", [])]})
    assert path == "loops[0](again).works"
    assert "at least 1 item" in msg


def test_loop_until_may_read_its_works_and_itself() -> None:
    raw = {
        "name": "x",
        "works": [W("a")],
        "loops": [L("again", ["a"], until="works.a.outputs > 3 or loops.again.iteration > 2")],
    }
    _, a = compile_raw(raw)
    assert a.read_outputs == {"a"}


def test_work_inside_a_loop_cannot_list_static_jobs() -> None:
    raw = {"name": "x", "works": [W("a", jobs=[{"name": "j"}])], "loops": [L("again", ["a"])]}
    path, msg = only(raw)
    assert path == "works[0](a).jobs"
    assert "inside a loop" in msg


def test_loop_variables_may_bind_outputs_of_works_the_loop_waits_for() -> None:
    raw = {
        "name": "x",
        "works": [W("prep"), W("train")],
        "loops": [
            L("again", ["train"], after=["prep"], variables={"lr": "${works.prep.outputs.lr}"})
        ],
    }
    _, a = compile_raw(raw)
    assert "prep" in a.read_outputs


# --- expressions -------------------------------------------------------------------------


def test_when_reads_a_work_that_is_not_upstream() -> None:
    raw = {"name": "x", "works": [W("a"), W("b", when="works.a.status == 'succeeded'")]}
    path, msg = only(raw)
    assert path == "works[1](b).when"
    assert "`works.a.status == 'succeeded'`" in msg
    assert "work 'a' is not upstream" in msg
    assert "`after`" in msg


def test_when_reads_a_downstream_work() -> None:
    raw = {
        "name": "x",
        "works": [W("a", when="works.b.status == 'succeeded'"), W("b", after=["a"])],
    }
    path, msg = only(raw)
    assert path == "works[0](a).when"
    assert "not upstream" in msg


def test_when_reads_transitive_upstream() -> None:
    raw = {
        "name": "x",
        "works": [W("a"), W("b", after=["a"]), W("c", after=["b"], when="works.a.outputs > 1")],
    }
    _, a = compile_raw(raw)
    assert a.read_outputs == {"a"}


def test_when_syntax_error() -> None:
    raw = {"name": "x", "works": [W("a"), W("b", after=["a"], when="works.a.status ==")]}
    path, msg = only(raw)
    assert path == "works[1](b).when"
    assert "expected a value" in msg
    assert "column" in msg


def test_when_unknown_work() -> None:
    raw = {
        "name": "x",
        "works": [W("square"), W("b", after=["square"], when="works.sqare.outputs")],
    }
    path, msg = only(raw)
    assert path == "works[1](b).when"
    assert "no work is named 'sqare'" in msg
    assert "did you mean 'square'?" in msg


def test_when_unknown_work_field() -> None:
    raw = {"name": "x", "works": [W("a"), W("b", after=["a"], when="works.a.output.x > 1")]}
    path, msg = only(raw)
    assert path == "works[1](b).when"
    assert "no field 'output'" in msg
    assert "outputs" in msg


def test_when_unknown_root_name() -> None:
    path, msg = only({"name": "x", "works": [W("a", when="foo == 1")]})
    assert path == "works[0](a).when"
    assert "unknown name 'foo'" in msg
    assert "params" in msg


def test_unknown_parameter_in_binding() -> None:
    raw = {
        "name": "x",
        "parameters": {"n": 1},
        "works": [W("a", parameters={"x": "${params.nope}"})],
    }
    path, msg = only(raw)
    assert path == "works[0](a).parameters"
    assert "`params.nope`" in msg
    assert "no workflow parameter 'nope'" in msg
    assert "known: n" in msg


def test_unknown_parameter_when_none_declared() -> None:
    path, msg = only({"name": "x", "works": [W("a", parameters={"x": "${params.n}"})]})
    assert path == "works[0](a).parameters"
    assert "none are declared" in msg


def test_binding_syntax_error_in_map() -> None:
    path, msg = only({"name": "x", "works": [W("a", map={"items": "${works.}"})]})
    assert path == "works[0](a).map"
    assert "column" in msg


def test_unterminated_binding() -> None:
    path, msg = only(
        {"name": "x", "parameters": {"n": 1}, "works": [W("a", parameters={"x": "${params.n"})]}
    )
    assert path == "works[0](a).parameters"
    assert "unterminated" in msg


def test_binding_in_map_reads_a_work_not_upstream() -> None:
    raw = {"name": "x", "works": [W("a"), W("b", map={"items": "${works.a.outputs}"})]}
    path, msg = only(raw)
    assert path == "works[1](b).map"
    assert "not upstream" in msg


def test_loop_used_outside_a_loop() -> None:
    path, msg = only({"name": "x", "works": [W("a", parameters={"i": "${loop.iteration}"})]})
    assert path == "works[0](a).parameters"
    assert "`loop` is only known inside a loop" in msg


def test_loop_fields_are_checked() -> None:
    raw = {"name": "x", "works": [W("a", when="loop.iter > 1")], "loops": [L("again", ["a"])]}
    path, msg = only(raw)
    assert path == "works[0](a).when"
    assert "`loop` has no field 'iter'" in msg


def test_loops_root_needs_the_loop_upstream() -> None:
    raw = {
        "name": "x",
        "works": [W("a"), W("b", when="loops.again.iteration > 1")],
        "loops": [L("again", ["a"])],
    }
    path, msg = only(raw)
    assert path == "works[1](b).when"
    assert "loop 'again' is not upstream" in msg


def test_loops_root_unknown_loop() -> None:
    path, msg = only({"name": "x", "works": [W("a", when="loops.nope.iteration > 1")]})
    assert path == "works[0](a).when"
    assert "no loop is named 'nope'" in msg


def test_workflow_root_fields() -> None:
    compile_raw(
        {"name": "x", "works": [W("a", parameters={"w": "${workflow.name}-${workflow.id}"})]}
    )
    path, msg = only({"name": "x", "works": [W("a", parameters={"w": "${workflow.owner}"})]})
    assert path == "works[0](a).parameters"
    assert "no field 'owner'" in msg


def test_until_and_next_are_checked() -> None:
    raw = {
        "name": "x",
        "works": [W("a")],
        "loops": [
            L("again", ["a"], until="works.a.outputs <", variables={"v": 1}, next={"v": "nope + 1"})
        ],
    }
    found = problems(raw)
    assert [p for p, _ in found] == ["loops[0](again).until", "loops[0](again).next.v"]
    assert "unknown name 'nope'" in found[1][1]


def test_escaped_binding_is_not_checked() -> None:
    compile_raw({"name": "x", "works": [W("a", parameters={"x": "$${params.nope}"})]})


# --- static jobs -------------------------------------------------------------------------


def test_static_job_parent_does_not_exist() -> None:
    raw = {"name": "x", "works": [W("a", jobs=[{"name": "j1"}, {"name": "j2", "parents": ["j0"]}])]}
    path, msg = only(raw)
    assert path == "works[0](a).jobs[1].parents[0]"
    assert "work 'a' has no job 'j0'" in msg


def test_static_job_parent_in_a_work_without_static_jobs() -> None:
    raw = {"name": "x", "works": [W("a", jobs=[{"name": "j1", "parents": ["b/j0"]}]), W("b")]}
    path, msg = only(raw)
    assert path == "works[0](a).jobs[0].parents[0]"
    assert "work 'b' has no static jobs" in msg


def test_static_job_parent_in_the_jobs_file() -> None:
    raw = {
        "name": "x",
        "jobs_file": "jobs.jsonl",
        "works": [W("a", jobs=[{"name": "j1", "parents": ["b/j0"]}]), W("b", jobs="from_file")],
    }
    path, msg = only(raw)
    assert path == "works[0](a).jobs[0].parents[0]"
    assert "cannot have parents in the jobs file" in msg


def test_static_job_listed_twice() -> None:
    path, msg = only({"name": "x", "works": [W("a", jobs=[{"name": "j"}, {"name": "j"}])]})
    assert path == "works[0](a).jobs[1].name"
    assert "listed twice" in msg


def test_static_job_cycle() -> None:
    raw = {
        "name": "x",
        "works": [
            W("a", jobs=[{"name": "j1", "parents": ["b/k1"]}]),
            W("b", jobs=[{"name": "k1", "parents": ["a/j1"]}]),
        ],
    }
    path, msg = only(raw)
    assert path == "works"
    assert "job parents make a cycle" in msg
    assert "a/j1" in msg and "b/k1" in msg


def test_static_jobs_across_works_are_job_upstream() -> None:
    raw = {
        "name": "x",
        "works": [
            W("a", jobs=[{"name": "j1"}]),
            W("b", jobs=[{"name": "k1", "parents": ["a/j1"]}, {"name": "k2", "parents": ["k1"]}]),
        ],
    }
    _, a = compile_raw(raw)
    assert a.job_upstream == {"b": {"a"}}


def test_jobs_from_file_without_jobs_file() -> None:
    path, msg = only({"name": "x", "works": [W("a", jobs="from_file")]})
    assert path == "jobs_file"
    assert "is required" in msg
    assert "'a'" in msg


def test_jobs_file_without_a_from_file_work() -> None:
    path, msg = only({"name": "x", "jobs_file": "jobs.jsonl", "works": [W("a")]})
    assert path == "jobs_file"
    assert "no work says `jobs: from_file`" in msg


def test_bad_jobs_keyword() -> None:
    path, msg = only({"name": "x", "works": [W("a", jobs="from_files")]})
    assert path == "works[0](a).jobs"
    assert "from_file" in msg


def test_bad_map_items_is_one_problem() -> None:
    path, _ = only({"name": "x", "works": [W("a", map={"items": 5})]})
    assert path == "works[0](a).map.items"


def test_bad_map_items_path() -> None:
    found = problems({"name": "x", "works": [W("a", map={"items": 5})]})
    assert {p for p, _ in found} == {"works[0](a).map.items"}


# --- several problems at once ------------------------------------------------------------


def test_several_cross_problems_at_once() -> None:
    raw = {
        "name": "x",
        "works": [W("a"), {"name": "b"}, W("a"), W("c", map={})],
        "loops": [L("again", ["zz"], variables={}, next={"v": "1"})],
    }
    found = problems(raw)
    paths = [p for p, _ in found]
    assert paths == [
        "works[2](a).name",
        "works[1](b)",
        "works[3](c).map",
        "loops[0](again).works[0]",
        "loops[0](again).next.v",
    ]


def test_several_expression_problems_at_once() -> None:
    raw = {
        "name": "x",
        "works": [
            W("a", when="works.b.status == 'succeeded'"),
            W("b", parameters={"x": "${params.p}", "y": "${loop.vars.v}"}),
        ],
    }
    found = problems(raw)
    assert [p for p, _ in found] == [
        "works[0](a).when",
        "works[1](b).parameters",
        "works[1](b).parameters",
    ]


# --- decoding ----------------------------------------------------------------------------


def test_decode_yaml_and_json() -> None:
    yaml_text = "name: demo\nworks:\n  - name: a\n    noop: true\n"
    json_text = json.dumps({"name": "demo", "works": [{"name": "a", "noop": True}]})
    assert decode(yaml_text) == decode(json_text) == {"name": "demo", "works": [W("a")]}


def test_decode_yaml_syntax_error_names_the_line() -> None:
    text = "name: demo\nworks:\n  - name: a\n\tnoop: true\n"
    with pytest.raises(TemplateError) as info:
        decode(text, "wf.yaml")
    [(path, msg)] = info.value.problems
    assert path == "wf.yaml"
    assert "not valid YAML/JSON at line 4, column 1" in msg


def test_decode_json_syntax_error_names_the_line() -> None:
    text = '{"name": "x",\n "works": [\n   {"name": "a" "noop": true}\n ]}'
    with pytest.raises(TemplateError) as info:
        decode(text, "wf.json")
    [(path, msg)] = info.value.problems
    assert path == "wf.json"
    assert "line 3," in msg


def test_decode_default_source() -> None:
    with pytest.raises(TemplateError) as info:
        decode("a: b: c")
    assert info.value.problems[0][0] == "<template>"
    assert "line 1, column 5" in info.value.problems[0][1]


def test_decoded_top_level_list_is_refused() -> None:
    raw = decode("- name: a\n  noop: true\n")
    with pytest.raises(TemplateError) as info:
        parse_template(raw)
    assert info.value.problems == [
        ("", "a template is a mapping with `name` and `works`; got a list")
    ]


def test_decode_does_not_build_python_objects() -> None:
    with pytest.raises(TemplateError):
        decode("!!python/object/apply:os.system ['true']")


def test_decode_deep_nesting_is_a_template_error() -> None:
    with pytest.raises(TemplateError):
        decode("[" * 1000 + "]" * 1000)


def _laughs(depth: int) -> str:
    """YAML whose aliases expand to 10**depth strings: a few hundred bytes of text."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, depth)]
    return "name: x\nparameters:\n" + "\n".join("  " + x for x in lines) + "\nworks: []\n"


def test_decode_refuses_alias_bombs() -> None:
    text = _laughs(9)
    assert len(text) < 1000
    with pytest.raises(TemplateError):
        decode(text)  # fast: only decoding, which shares the aliased lists
