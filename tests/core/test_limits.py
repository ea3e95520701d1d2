"""Size limits on what expressions build, on job arguments and on listed jobs (issue 15, 8)."""

from __future__ import annotations

from typing import Any

import pytest

from orchid.core import jsonvalues
from orchid.core.expr import evaluate, interpolate
from orchid.core.jobs import expand_map, inline_jobs, read_job_lines
from orchid.core.limits import DEFAULT, Limits
from orchid.core.plan import Planner, RunState, WorkState
from orchid.core.states import WorkflowStatus, WorkStatus
from orchid.core.template import check_values, parse_template
from orchid.core.validate import analyse
from orchid.errors import ExpressionError, InvalidInput, TemplateError

# the parameter of the report: 180 bytes that made a 34 MB job argument
PAYLOAD = "${" + " + ".join(["range(10**6)"] * 12) + "}"
SMALL = Limits(
    expr_max_items=100,
    expr_max_string=1000,
    expr_max_bytes=5000,
    job_args_max_bytes=2000,
    result_max_bytes=1000,
)


def test_the_payload_of_the_report_fails_before_building_the_list() -> None:
    assert len(PAYLOAD) == 180
    with pytest.raises(ExpressionError) as info:
        interpolate({"x": PAYLOAD}, {}, DEFAULT, "works[0](sim).parameters")
    # refused at the first '+', before the two lists are joined (not after 12 of them)
    message = str(info.value)
    assert message.startswith("works[0](sim).parameters.x: the list would have 2,000,000 items")
    assert "limit of 1,000,000 (setting expr_max_items, ORCHID_EXPR_MAX_ITEMS)" in message
    assert info.value.field == "works[0](sim).parameters.x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("range(101)", "range() would have 101 items, more than the limit of 100"),
        ("range(60) + range(50)", "the list would have 110 items"),
        ("s + s", "the string would have 1,200 characters, more than the limit of 1,000"),
        ("str([s, s])", "the text would have 1,"),
        ("[s, s, s, s, s, s, s, s, s]", "more than the limit of 5,000 bytes as JSON"),
        ("[l, l] + [l, l]", "more than the limit of 5,000 bytes as JSON"),
        # no list over the limit, but too many of them: 4 times the limit in all
        ("[range(90), range(90), range(90), range(90), range(90)]", "more than 400 list items"),
        ("[sorted(l), sorted(l), sorted(l), sorted(l), sorted(l)] + l", "more than 400 list"),
        ("[t + t, t + t, t + t, t + t, t + t, t + t]", "more than 4,000 characters of text"),
    ],
)
def test_expressions_stop_at_each_limit(text: str, message: str) -> None:
    names = {"s": "x" * 600, "t": "z" * 400, "l": ["y" * 50] * 90}
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(text, names, SMALL)


def test_values_within_the_limits_are_built() -> None:
    assert evaluate("range(100)", {}, SMALL) == list(range(100))
    assert evaluate("len(range(50) + range(50))", {}, SMALL) == 100
    assert len(evaluate("s + s", {"s": "x" * 500}, SMALL)) == 1000
    assert len(evaluate("range(1000000)", {})) == 1_000_000  # the default: a million


def test_text_with_bindings_is_limited_as_a_whole() -> None:
    names = {"s": "x" * 400}
    assert len(interpolate("${s}-${s}", names, SMALL)) == 801
    with pytest.raises(ExpressionError, match="the text would have 1,202 characters") as info:
        interpolate({"a": ["${s}-${s}-${s}"]}, names, SMALL, "loops[0](l).variables")
    assert info.value.field == "loops[0](l).variables.a[0]"


def test_many_references_to_one_big_value_cost_no_more_than_the_limit() -> None:
    """[x, x, ...] is cheap in memory but huge as JSON; measuring stops at the limit."""
    big = list(range(1_000_000))
    shared = [big] * 5000  # 35 GB as JSON
    assert jsonvalues.size(shared, 1000) <= 1000 + 1_000_001
    with pytest.raises(ExpressionError, match="more than the limit of 16,777,216 bytes as JSON"):
        evaluate("[b, b, b]", {"b": big})
    assert evaluate("len([b, b, b])", {"b": big}) == 3  # a count is fine
    assert evaluate("[b, b] == [b, b]", {"b": big}) is True  # no walk of b per item


def test_size_is_exact_for_plain_json() -> None:
    import json

    value: Any = {"a": [1, 2.5, "x", None, True, False, {"b": -300}], "c": ""}
    exact = len(json.dumps(value, separators=(",", ":")))
    assert jsonvalues.size(value, 10**6) == exact


# --- job arguments ---------------------------------------------------------------------


def test_job_args_of_a_map_of_huge_items_name_the_item() -> None:
    big = "x" * 1500
    with pytest.raises(InvalidInput) as info:
        expand_map({"items": [{"a": 1}, {"a": big}]}, {"p": "y" * 600}, SMALL, "works[2](w)")
    assert info.value.field == "works[2](w).map.items[1]"
    assert "limit of 2,000 bytes as JSON (setting job_args_max_bytes" in str(info.value)
    with pytest.raises(InvalidInput, match=r"works\[2\]\(w\).map.zip\[0\]"):
        expand_map({"zip": {"a": [big, "s"], "b": ["t" * 600, "u"]}}, {}, SMALL, "works[2](w)")
    with pytest.raises(InvalidInput, match=r"map.product.b\[1\]"):
        expand_map({"product": {"a": [big, "s"], "b": ["t", "u" * 600]}}, {}, SMALL, "works[2](w)")
    # fits: zip rows pair a big item with a small one
    rows = expand_map({"zip": {"a": [big, "s"], "b": ["t", "u" * 400]}}, {}, SMALL, "works[2](w)")
    assert len(rows) == 2


def test_job_args_of_one_job_name_the_largest_parameter() -> None:
    with pytest.raises(InvalidInput) as info:
        expand_map(None, {"small": 1, "big": "x" * 3000}, SMALL, "works[0](w)")
    assert info.value.field == "works[0](w).parameters.big"


def _template(**work: Any) -> dict[str, Any]:
    return {"name": "t", "parameters": {"n": 1}, "works": [{"name": "sim", "noop": True, **work}]}


def _start(t: dict[str, Any], limits: Limits) -> Any:
    tpl = parse_template(t)
    planner = Planner(tpl, analyse(tpl), limits)
    state = RunState(
        1, "t", WorkflowStatus.RUNNING, {"n": 1}, {}, [WorkState(1, "sim", 0, WorkStatus.WAITING)]
    )
    return planner.decide(state)


def test_planning_fails_a_work_whose_parameters_are_too_large() -> None:
    d = _start(_template(parameters={"x": "${str(range(99))}", "y": PAYLOAD}), DEFAULT)
    (stop,) = d.stop
    assert stop.status == WorkStatus.FAILED
    assert "cannot bind parameters: works[0](sim).parameters.y: the list would have" in stop.message
    four = " + ".join(["str(range(99))"] * 4)  # 1,152 characters
    d = _start(_template(parameters={"x": "${" + four + "}"}), SMALL)
    (stop,) = d.stop
    assert "works[0](sim).parameters.x: the string would have 1,152 characters" in stop.message
    three = " + ".join(["str(range(99))"] * 3)
    params = {f"p{i}": "${str(range(99))}" for i in range(5)} | {"big": "${" + three + "}"}
    d = _start(_template(parameters=params), SMALL)
    (stop,) = d.stop
    assert "works[0](sim).parameters.big: a job's arguments would take more than" in stop.message
    assert "(setting job_args_max_bytes, ORCHID_JOB_ARGS_MAX_BYTES)" in stop.message
    del params["p0"], params["p1"]
    assert _start(_template(parameters=params), SMALL).start  # 1,800 bytes: they fit


def test_listed_jobs_with_args_over_the_limit_are_refused_at_submission() -> None:
    t = parse_template(
        _template(
            jobs=[{"name": "j1", "args": {"a": 1}}, {"name": "j2", "args": {"a": "x" * 3000}}]
        )
    )
    with pytest.raises(TemplateError) as info:
        inline_jobs(t, SMALL)
    assert info.value.problems[0][0] == "works[0](sim).jobs[1](j2).args"
    assert len(inline_jobs(t)) == 2  # the default limit: 1 MiB

    ft = parse_template({"name": "f", "works": [{"name": "w", "noop": True, "jobs": "from_file"}]})
    lines = ['{"work": "w", "name": "a", "args": {"x": "' + "y" * 3000 + '"}}']
    with pytest.raises(TemplateError, match=r"jobs\.jsonl:1: `args` take more than the limit"):
        list(read_job_lines(ft, lines, "jobs.jsonl", SMALL))


# --- NUL characters ----------------------------------------------------------------------


def test_nul_characters_are_refused_in_templates_and_job_lines() -> None:
    raw = _template(command=["echo", "a\x00b"])
    del raw["works"][0]["noop"]
    with pytest.raises(TemplateError) as info:
        check_values(raw, "template")
    assert info.value.problems[0][0] == "works[0](sim).command[1]"
    assert "NUL character" in info.value.problems[0][1]
    ft = parse_template({"name": "f", "works": [{"name": "w", "noop": True, "jobs": "from_file"}]})
    lines = ['{"work": "w", "name": "a", "args": {"x": ["ok", "a\\u0000b"]}}']
    with pytest.raises(TemplateError, match=r"jobs.jsonl:1: args.x\[1\] holds a NUL character"):
        list(read_job_lines(ft, lines, "jobs.jsonl"))


def test_limits_must_be_positive_whole_numbers() -> None:
    with pytest.raises(ValueError, match="expr_max_items must be a whole number of at least 1"):
        Limits(expr_max_items=0)
