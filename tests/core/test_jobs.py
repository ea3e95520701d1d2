"""Where jobs come from: map expansion, inline static jobs, and the JSON-lines jobs file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchid.core import jobs
from orchid.core.jobs import JobDraft, expand_map, inline_jobs, read_job_lines
from orchid.core.template import Template, parse_template
from orchid.core.validate import analyse
from orchid.errors import InvalidInput, TemplateError

# --- expand_map --------------------------------------------------------------------------


def test_no_map_is_one_job_with_the_common_arguments() -> None:
    common = {"a": 1, "b": [2]}
    out = expand_map(None, common)
    assert out == [{"a": 1, "b": [2]}]
    out[0]["a"] = 9
    assert common["a"] == 1  # a copy


def test_items_one_job_per_item_merged_over_common() -> None:
    out = expand_map({"items": [{"x": 1}, {"x": 2, "k": "override"}]}, {"k": "common"})
    assert out == [{"k": "common", "x": 1}, {"k": "override", "x": 2}]


def test_empty_items_is_no_jobs() -> None:
    assert expand_map({"items": []}, {"k": 1}) == []


def test_product_is_every_combination_in_order() -> None:
    out = expand_map({"product": {"x": [1, 2], "y": ["a", "b", "c"]}}, {"k": 0})
    assert out == [
        {"k": 0, "x": 1, "y": "a"},
        {"k": 0, "x": 1, "y": "b"},
        {"k": 0, "x": 1, "y": "c"},
        {"k": 0, "x": 2, "y": "a"},
        {"k": 0, "x": 2, "y": "b"},
        {"k": 0, "x": 2, "y": "c"},
    ]


def test_product_with_an_empty_list_is_no_jobs() -> None:
    assert expand_map({"product": {"x": [1, 2], "y": []}}, {}) == []


def test_product_values_may_be_any_json() -> None:
    out = expand_map({"product": {"cfg": [{"a": 1}, None], "flag": [True]}}, {})
    assert out == [{"cfg": {"a": 1}, "flag": True}, {"cfg": None, "flag": True}]


def test_zip_pairs_by_position() -> None:
    out = expand_map({"zip": {"x": [1, 2, 3], "y": ["a", "b", "c"]}}, {"k": 0})
    assert out == [
        {"k": 0, "x": 1, "y": "a"},
        {"k": 0, "x": 2, "y": "b"},
        {"k": 0, "x": 3, "y": "c"},
    ]


def test_zip_of_empty_lists_is_no_jobs() -> None:
    assert expand_map({"zip": {"x": [], "y": []}}, {"k": 0}) == []


def test_zip_lists_of_different_lengths() -> None:
    with pytest.raises(InvalidInput, match=r"map.zip lists must have the same length") as info:
        expand_map({"zip": {"x": [1, 2], "y": [1]}}, {})
    assert "'x': 2" in str(info.value) and "'y': 1" in str(info.value)


@pytest.mark.parametrize("items", [{"x": 1}, "text", 3, None, [{"x": 1}, 2], [[1]]])
def test_items_must_be_a_list_of_mappings(items: Any) -> None:
    with pytest.raises(InvalidInput, match=r"map.items must be a list of mappings; got "):
        expand_map({"items": items}, {})


@pytest.mark.parametrize("form", ["product", "zip"])
@pytest.mark.parametrize(("value", "kind"), [("abc", "str"), (3, "int"), ({"a": 1}, "dict")])
def test_product_and_zip_values_must_be_lists(form: str, value: Any, kind: str) -> None:
    with pytest.raises(InvalidInput) as info:
        expand_map({form: {"ok": [1], "bad": value}}, {})
    msg = str(info.value)
    assert msg.startswith(f"map.{form}.bad must be a list; got {kind}")


def test_error_shows_what_it_got() -> None:
    with pytest.raises(InvalidInput, match=r'got str "abc"'):
        expand_map({"product": {"x": "abc"}}, {})


@pytest.mark.parametrize(
    "resolved",
    [
        {"items": [{"i": i} for i in range(6)]},
        {"product": {"x": [1, 2, 3], "y": [1, 2]}},
        {"zip": {"x": list(range(6)), "y": list(range(6))}},
    ],
)
def test_too_many_jobs(monkeypatch: pytest.MonkeyPatch, resolved: dict[str, Any]) -> None:
    monkeypatch.setattr(jobs, "MAX_JOBS_PER_MAP", 5)
    with pytest.raises(InvalidInput, match=r"the map would make 6 jobs, more than 5") as info:
        expand_map(resolved, {})
    assert "jobs_file" in str(info.value)


def test_exactly_the_limit_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "MAX_JOBS_PER_MAP", 6)
    assert len(expand_map({"product": {"x": [1, 2, 3], "y": [1, 2]}}, {})) == 6


def test_a_huge_product_is_refused_before_it_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "MAX_JOBS_PER_MAP", 1000)
    big = {f"k{i}": list(range(10)) for i in range(12)}  # 10**12 combinations
    with pytest.raises(InvalidInput, match="1,000,000,000,000 jobs"):
        expand_map({"product": big}, {})


def test_expanded_jobs_do_not_share_state() -> None:
    out = expand_map({"items": [{"x": 1}, {"x": 2}]}, {"k": 0})
    out[0]["k"] = 5
    assert out[1]["k"] == 0


# --- inline_jobs -------------------------------------------------------------------------


def template(works: list[dict[str, Any]], **top: Any) -> Template:
    t = parse_template({"name": "wf", "works": works, **top})
    analyse(t)  # only valid templates reach inline_jobs / read_job_lines
    return t


def test_inline_jobs_parents_come_first() -> None:
    t = template(
        [
            {
                "name": "a",
                "noop": True,
                "jobs": [
                    {"name": "j3", "parents": ["j2", "b/k1"]},
                    {"name": "j2", "parents": ["j1"], "args": {"x": 2}},
                    {"name": "j1"},
                ],
            },
            {
                "name": "b",
                "noop": True,
                "jobs": [{"name": "k1"}, {"name": "k2", "parents": ["a/j3"]}],
            },
        ]
    )
    drafts = inline_jobs(t)
    keys = [(d.work, d.name) for d in drafts]
    assert sorted(keys) == sorted([("a", "j1"), ("a", "j2"), ("a", "j3"), ("b", "k1"), ("b", "k2")])
    pos = {k: i for i, k in enumerate(keys)}
    for d in drafts:
        for parent in d.parents:
            assert pos[parent] < pos[(d.work, d.name)]
    by_key = {(d.work, d.name): d for d in drafts}
    assert by_key[("a", "j3")].parents == (("a", "j2"), ("b", "k1"))  # bare names: own work
    assert by_key[("a", "j2")].args == {"x": 2}
    assert by_key[("a", "j1")] == JobDraft("a", "j1", {}, ())


def test_inline_jobs_without_parents_keep_template_order() -> None:
    t = template([{"name": "a", "noop": True, "jobs": [{"name": n} for n in ("z", "m", "a")]}])
    assert [d.name for d in inline_jobs(t)] == ["z", "m", "a"]


def test_inline_jobs_ignore_maps_and_file_works() -> None:
    t = template(
        [
            {"name": "m", "noop": True, "map": {"items": [{}]}},
            {"name": "f", "noop": True, "jobs": "from_file"},
            {"name": "s", "noop": True, "jobs": [{"name": "j"}]},
        ],
        jobs_file="jobs.jsonl",
    )
    assert inline_jobs(t) == [JobDraft("s", "j", {}, ())]


def test_no_inline_jobs() -> None:
    assert inline_jobs(template([{"name": "a", "noop": True}])) == []


# --- read_job_lines ----------------------------------------------------------------------


@pytest.fixture
def t() -> Template:
    return template(
        [
            {"name": "inline", "noop": True, "jobs": [{"name": "i1"}]},
            {"name": "sim", "noop": True, "jobs": "from_file"},
            {"name": "reco", "noop": True, "jobs": "from_file"},
            {"name": "plain", "noop": True},
            {"name": "looped", "noop": True},
        ],
        jobs_file="jobs.jsonl",
        loops=[{"name": "again", "works": ["looped"], "until": "true", "max_iterations": 2}],
    )


def line(**obj: Any) -> str:
    return json.dumps(obj)


def test_read_a_good_file(t: Template, tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        "\n".join(
            [
                line(work="sim", name="s1", args={"seed": 1}),
                line(work="sim", name="s2", args={"seed": 2}, parents=["inline/i1"]),
                "",
                "   ",
                line(work="reco", name="r1", parents=["sim/s1", "sim/s2"]),
                line(work="reco", name="r2", parents=["r1"]),
                line(work="sim", name="r1"),  # job names are per work
            ]
        )
        + "\n"
    )
    with path.open() as fh:
        drafts = list(read_job_lines(t, fh, "jobs.jsonl"))
    assert drafts == [
        JobDraft("sim", "s1", {"seed": 1}, ()),
        JobDraft("sim", "s2", {"seed": 2}, (("inline", "i1"),)),
        JobDraft("reco", "r1", {}, (("sim", "s1"), ("sim", "s2"))),
        JobDraft("reco", "r2", {}, (("reco", "r1"),)),
        JobDraft("sim", "r1", {}, ()),
    ]


def test_read_is_lazy(t: Template) -> None:
    def lines() -> Any:
        yield line(work="sim", name="s1")
        raise AssertionError("read further than asked")

    assert next(iter(read_job_lines(t, lines(), "f"))) == JobDraft("sim", "s1", {}, ())


def problems_of(t: Template, lines: list[str], source: str = "jobs.jsonl") -> list[tuple[str, str]]:
    with pytest.raises(TemplateError) as info:
        list(read_job_lines(t, lines, source))
    return info.value.problems


def one_problem(t: Template, bad: str) -> tuple[str, str]:
    """The problem of one bad line, placed third after two good ones."""
    found = problems_of(t, [line(work="sim", name="ok1"), line(work="sim", name="ok2"), bad])
    assert len(found) == 1, found
    return found[0]


def test_not_json(t: Template) -> None:
    where, msg = one_problem(t, '{"work": "sim", "name": ')
    assert where == "jobs.jsonl:3"
    assert msg.startswith("not valid JSON")
    assert "column" in msg


@pytest.mark.parametrize("bad", ["[1, 2]", '"text"', "null", "3"])
def test_not_an_object(t: Template, bad: str) -> None:
    where, msg = one_problem(t, bad)
    assert where == "jobs.jsonl:3"
    assert "each line must be an object" in msg


def test_unknown_fields(t: Template) -> None:
    where, msg = one_problem(t, line(work="sim", name="x", parent=["ok1"], extra=1))
    assert where == "jobs.jsonl:3"
    assert "unknown fields ['extra', 'parent']" in msg
    assert "allowed: work, name, args, parents" in msg


@pytest.mark.parametrize("work", ["nope", "plain", "inline", None, 3])
def test_work_must_take_its_jobs_from_the_file(t: Template, work: Any) -> None:
    where, msg = one_problem(t, json.dumps({"work": work, "name": "x"}))
    assert where == "jobs.jsonl:3"
    assert "`work` must name a work with `jobs: from_file`" in msg
    assert "['reco', 'sim']" in msg
    assert repr(work) in msg


def test_missing_work(t: Template) -> None:
    where, msg = one_problem(t, line(name="x"))
    assert where == "jobs.jsonl:3"
    assert "got None" in msg


@pytest.mark.parametrize("name", ["", None, 3, ["x"], "a/b", "has space"])
def test_name_must_be_a_job_name(t: Template, name: Any) -> None:
    where, msg = one_problem(t, json.dumps({"work": "sim", "name": name}))
    assert where == "jobs.jsonl:3"
    assert msg.startswith("`name` must match") and "no '/'" in msg


def test_parent_in_a_work_without_static_jobs(t: Template) -> None:
    where, msg = one_problem(t, line(work="sim", name="x", parents=["plain/j"]))
    assert where == "jobs.jsonl:3"
    assert "work 'plain' has no static jobs" in msg


def test_parent_in_a_loop(t: Template) -> None:
    where, msg = one_problem(t, line(work="sim", name="x", parents=["looped/j"]))
    assert where == "jobs.jsonl:3"
    assert "inside a loop" in msg


def test_line_numbers_count_blank_lines(t: Template) -> None:
    found = problems_of(t, ["", line(work="sim", name="ok"), "  ", "oops"], source="big.jsonl")
    assert [w for w, _ in found] == ["big.jsonl:4"]


def test_every_bad_line_is_reported(t: Template) -> None:
    lines = [
        line(work="sim", name="a"),
        "oops",
        line(work="sim", name="b"),
        line(work="nope", name="c"),
        line(work="sim", name="d", parents=["b"]),  # fine: b came earlier
        line(work="sim", name="e", parents=["plain/x"]),
    ]
    found = problems_of(t, lines)
    assert [w for w, _ in found] == ["jobs.jsonl:2", "jobs.jsonl:4", "jobs.jsonl:6"]


def test_lines_are_read_alone_so_memory_stays_flat(t: Template) -> None:
    """Whether a parent came earlier, and whether a name repeats, is for the store to say
    (store/graph.py checks both as it writes): the reader keeps nothing of earlier lines."""
    lines = [
        line(work="sim", name="a", parents=["later"]),
        line(work="sim", name="a"),
        line(work="reco", name="r", parents=["sim/a", "sim/a", "a"]),
    ]
    drafts = list(read_job_lines(t, lines, "f"))
    assert [d.parents for d in drafts] == [(("sim", "later"),), (), (("sim", "a"), ("reco", "a"))]
    assert [d.where for d in drafts] == ["f:1", "f:2", "f:3"]


def test_good_lines_after_a_bad_one_are_not_yielded(t: Template) -> None:
    lines = [line(work="sim", name="a"), "oops", line(work="sim", name="b")]
    seen: list[JobDraft] = []
    with pytest.raises(TemplateError):
        seen.extend(read_job_lines(t, lines, "f"))
    assert [d.name for d in seen] == ["a"]  # the caller's transaction rolls this back


def test_at_most_max_errors_are_reported(t: Template) -> None:
    found = problems_of(t, ["oops"] * 30)
    assert len(found) == jobs.MAX_ERRORS == 20
    assert found[-1][0] == "jobs.jsonl:20"


def test_max_errors_is_read_at_call_time(t: Template, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "MAX_ERRORS", 2)
    assert len(problems_of(t, ["oops"] * 5)) == 2


def test_template_error_text_lists_file_and_line(t: Template) -> None:
    with pytest.raises(TemplateError) as info:
        list(read_job_lines(t, ["oops"], "data/jobs.jsonl"))
    assert "data/jobs.jsonl:1: not valid JSON" in str(info.value)


def test_file_job_names_follow_the_inline_job_name_rules(t: Template) -> None:
    where, _ = one_problem(t, line(work="sim", name="a/b"))
    assert where == "jobs.jsonl:3"
