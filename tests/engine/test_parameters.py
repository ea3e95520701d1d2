"""A work's ``parameters`` reach every job of the work: mapped, listed inline, from a file.

End to end on real processes (the local executor), on SQLite and PostgreSQL: a static
value, a workflow parameter and an upstream work's result all arrive in the command of
listed jobs, and a job's own args win over the work's parameters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchid.errors import TemplateError
from orchid.store import jobs
from tests.engine.enginekit import EngineFactory, jobs_of, python_cmd

ECHO = "import json, sys; print(json.dumps(sys.argv[1:]))"


def _template(listed: list[dict[str, Any]] | str) -> dict[str, Any]:
    return {
        "name": "params-reach-jobs",
        "parameters": {"run": 7},
        "works": [
            {"name": "up", "command": python_cmd('print(\'{{"out": "u1"}}\')')},
            {
                "name": "step",
                "after": ["up"],
                "command": python_cmd(ECHO, "{calib}", "{run}", "{upstream}", "{own}", "{id}"),
                "parameters": {
                    "calib": "v7",
                    "run": "${params.run}",
                    "upstream": "${works.up.outputs.out}",
                    "own": "from-the-work",
                },
                "jobs": listed,
            },
        ],
    }


LISTED = [
    {"name": "a", "args": {"id": 1}},
    {"name": "b", "args": {"id": 2, "own": "from-the-job"}, "parents": ["a"]},
]


@pytest.mark.parametrize("source", ["inline", "from_file"])
def test_listed_jobs_get_the_work_parameters(
    make_engine: EngineFactory, tmp_path: Path, source: str
) -> None:
    e = make_engine("local", workers=2)
    if source == "inline":
        template = _template(LISTED)
    else:
        template = {**_template("from_file"), "jobs_file": "jobs.jsonl"}
        lines = [json.dumps({"work": "step", **job}) for job in LISTED]
        (e.base_dir / "jobs.jsonl").write_text("\n".join(lines) + "\n")

    wf_id, wf = e.run(template, params={"run": 42})

    assert wf.status == "succeeded", wf.message
    step = {j.name: j for j in jobs_of(e.db, wf_id) if j.name in ("a", "b")}
    assert step["a"].result == ["v7", "42", "u1", "from-the-work", "1"]
    assert step["b"].result == ["v7", "42", "u1", "from-the-job", "2"]
    assert step["b"].args == {
        "calib": "v7",
        "run": 42,
        "upstream": "u1",
        "own": "from-the-job",
        "id": 2,
    }


def test_merge_keeps_the_jobs_own_values_as_they_were_written(make_engine: EngineFactory) -> None:
    """Nulls, nested objects, large floats and odd keys survive the merge on both databases."""
    e = make_engine("null")
    own: dict[str, Any] = {"n": None, "o": {"k": [1, 2.5, None]}, "f": 1e20, 'q"k': "x", "t": True}
    template = {
        "name": "merge",
        "works": [{"name": "w", "noop": True, "jobs": [{"name": "j", "args": own}, {"name": "e"}]}],
    }
    wf_id = e.submit(template)
    work_id = next(j.work_id for j in jobs_of(e.db, wf_id))
    params = {"n": 1, "o": {"other": 1}, "p": {"deep": [None, False]}, 'q"k': "no", "z": 1e-5}
    with e.db.begin() as conn:
        assert jobs.merge_args(conn, work_id, params) == 2
        assert jobs.merge_args(conn, work_id, {}) == 0
    got = {j.name: j.args for j in jobs_of(e.db, wf_id)}
    assert got["j"] == {**params, **own}
    assert got["e"] == params
    assert isinstance(got["j"]["f"], float)


HOSTILE = ["x; touch pwned", "$(touch pwned)", "`touch pwned`", "'; touch pwned; '", 'a\nb "c"']


def test_hostile_parameters_reach_a_shell_script_as_text(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    """The examples' shape: ``sh -c '... {arg}'`` with ``-p arg=...`` from whoever submits."""
    e = make_engine("local", workers=2)
    out = tmp_path / "out"
    out.mkdir()
    script = f"cd {out} && printf '%s' {{arg}} > bare && printf '%s' \"{{arg}}\" > quoted"
    template = {
        "name": "hostile",
        "parameters": {"arg": "safe"},
        "works": [
            {
                "name": "echo",
                "command": ["sh", "-c", script],
                "parameters": {"arg": "${params.arg}"},
            }
        ],
    }
    for value in HOSTILE:
        _, wf = e.run(template, params={"arg": value})
        assert wf.status == "succeeded", wf.message
        assert sorted(p.name for p in out.iterdir()) == ["bare", "quoted"], value
        assert (out / "bare").read_text() == value
        assert (out / "quoted").read_text() == value


def test_submission_refuses_a_placeholder_no_job_fills(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    e = make_engine("null")
    with pytest.raises(TemplateError, match=r"works\[0\]\(w\)\.command\[1\]"):
        e.submit({"name": "t", "works": [{"name": "w", "command": ["echo", "{calib}"]}]})
    template = {
        "name": "t",
        "jobs_file": "jobs.jsonl",
        "works": [{"name": "w", "command": ["echo", "{visit}"], "jobs": "from_file"}],
    }
    (e.base_dir / "jobs.jsonl").write_text('{"work": "w", "name": "a"}\n')
    with pytest.raises(TemplateError, match=r"jobs\.jsonl:1"):
        e.submit(template)
