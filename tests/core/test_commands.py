"""Checks of commands against the args their jobs will have, and of unsafe substitutions."""

from __future__ import annotations

from typing import Any

import pytest

from orchid.core import commands
from orchid.core.jobs import read_job_lines
from orchid.core.template import parse_template
from orchid.errors import TemplateError


def _problems(*works: dict[str, Any], **top: Any) -> list[tuple[str, str]]:
    return commands.problems(parse_template({"name": "t", "works": list(works), **top}))


def test_a_placeholder_no_job_or_parameter_gives_is_reported() -> None:
    found = _problems(
        {
            "name": "w",
            "command": ["run", "--calib={calib}", "{visit}", "{tag!q}"],
            "env": {"TAG": "{tag}"},
            "parameters": {"visit": 1},
            "jobs": [{"name": "a", "args": {"calib": "x"}}, {"name": "b"}],
        }
    )
    assert [path for path, _ in found] == [
        "works[0](w).command[1]",
        "works[0](w).command[3]",
        "works[0](w).env.TAG",
    ]
    assert "job 'b' has no argument 'calib'" in found[0][1]
    assert "no job has argument 'tag'" in found[1][1]


@pytest.mark.parametrize(
    "work",
    [
        {"command": ["echo", "{x}"], "parameters": {"x": "${params.p}"}},
        {"command": ["echo", "{x}", "{y}"], "map": {"product": {"x": "${params.l}", "y": [1]}}},
        {"command": ["echo", "{x}"], "map": {"items": [{"x": 1}, {"x": 2, "y": 3}]}},
        {"command": ["echo", "{x}"], "map": {"items": "${params.l}"}},  # known at run time
        {"command": ["sh", "-c", "echo ${x} {{x}} '{print $1}'"]},  # shell text, braces
        {"command": ["python", "-c", "x = 1; print(f'{x}')"]},  # Python's own braces
        {"command": ["echo", "{url}", "{files}"], "input": {"manager": "m", "collection": "c"}},
        {"command": ["echo", "{x}"], "jobs": "from_file"},  # checked line by line
    ],
)
def test_placeholders_every_job_can_fill_are_fine(work: dict[str, Any]) -> None:
    top: dict[str, Any] = {"parameters": {"p": 1, "l": [1]}}
    if work.get("jobs") == "from_file":
        top["jobs_file"] = "jobs.jsonl"
    assert _problems({"name": "w", **work}, **top) == []


def test_map_items_and_single_jobs_are_checked() -> None:
    found = _problems(
        {"name": "m", "command": ["echo", "{y}"], "map": {"items": [{"x": 1}, {"y": 2}]}},
        {"name": "one", "command": ["echo", "{y}"]},
        {
            "name": "c",
            "command": ["echo", "{url}"],
            "input": {"manager": "m", "collection": "c", "files_per_job": 2},
        },
    )
    assert [(p, m.split(":")[1].strip().split(" has")[0]) for p, m in found] == [
        ("works[0](m).command[1]", "map item 0"),
        ("works[1](one).command[1]", "its job"),
        ("works[2](c).command[1]", "each job"),
    ]


def test_each_line_of_a_jobs_file_must_fill_its_work_command() -> None:
    t = parse_template(
        {
            "name": "t",
            "jobs_file": "jobs.jsonl",
            "works": [
                {
                    "name": "w",
                    "command": ["run", "{visit}", "{calib}"],
                    "parameters": {"calib": "v7"},
                    "jobs": "from_file",
                }
            ],
        }
    )
    good = '{"work": "w", "name": "a", "args": {"visit": 1}}'
    assert [d.name for d in read_job_lines(t, [good], "jobs.jsonl")] == ["a"]
    bad = '{"work": "w", "name": "b", "args": {"detector": 1}}'
    with pytest.raises(TemplateError) as err:
        list(read_job_lines(t, [good, bad], "jobs.jsonl"))
    ((where, message),) = err.value.problems
    assert where == "jobs.jsonl:2" and "'visit'" in message and "{visit}" in message


def test_warnings_name_raw_values_in_scripts_and_values_in_code() -> None:
    t = parse_template(
        {
            "name": "t",
            "works": [
                {"name": "a", "command": ["sh", "-c", 'echo {x} "{x}"'], "parameters": {"x": 1}},
                {"name": "b", "command": ["bash", "-c", "eval {x!r}"], "parameters": {"x": 1}},
                {"name": "c", "command": ["python", "-c", "print({x})"], "parameters": {"x": 1}},
            ],
        }
    )
    assert [path for path, _ in commands.warnings(t)] == [
        "works[1](b).command[2]",  # eval
        "works[1](b).command[2]",  # {x!r}
        "works[2](c).command[2]",
    ]
