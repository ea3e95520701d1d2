"""Limits at run time: values bindings build, job arguments, results, NUL characters and
retry delays, through the agents (issue 15, items 8 and 10), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from orchid.core.model import Work
from tests.engine.enginekit import EngineFactory, ScriptedExecutor, jobs_of, python_cmd, works_of

PAYLOAD = "${" + " + ".join(["range(10**6)"] * 12) + "}"  # 180 bytes: a 34 MB argument once


def work(works: list[Work], name: str) -> Work:
    return next(w for w in works if w.name == name)


def test_the_payload_of_the_report_fails_its_work_with_the_field(
    make_engine: EngineFactory,
) -> None:
    e = make_engine("null")
    template = {
        "name": "bomb",
        "works": [{"name": "sim", "noop": True, "parameters": {"x": PAYLOAD}}],
    }
    wf_id, wf = e.run(template)
    assert wf.status == "failed"
    sim = work(works_of(e.db, wf_id), "sim")
    assert sim.status == "failed"
    assert sim.message.startswith(
        "cannot bind parameters: works[0](sim).parameters.x: the list would have 2,000,000 "
        "items, more than the limit of 1,000,000 (setting expr_max_items"
    )
    assert jobs_of(e.db, wf_id) == []


def test_a_map_of_huge_items_fails_at_expansion_naming_the_item(
    make_engine: EngineFactory,
) -> None:
    e = make_engine("null", job_args_max_bytes=2000)
    template = {
        "name": "huge",
        "parameters": {"big": "x" * 1500},
        "works": [
            {
                "name": "ok",
                "noop": True,
                "map": {"zip": {"v": "${[params.big, 'small']}"}},
            },
            {
                "name": "sweep",
                "noop": True,
                "parameters": {"common": "${params.big}"},
                "map": {"zip": {"v": "${['small', params.big]}"}},
            },
        ],
    }
    wf_id, wf = e.run(template)
    assert wf.status == "failed"
    works = works_of(e.db, wf_id)
    assert work(works, "ok").status == "succeeded"  # 1.5 KB each: within 2,000 bytes
    sweep = work(works, "sweep")
    assert sweep.status == "failed"
    assert sweep.message.startswith(
        "cannot make jobs: works[1](sweep).map.zip[1]: a job's arguments (with the work's "
        "parameters) would take more than the limit of 2,000 bytes as JSON (setting "
        "job_args_max_bytes"
    )
    assert {j.work_name for j in jobs_of(e.db, wf_id)} == {"ok"}


def test_a_result_over_the_limit_fails_its_job_whatever_the_executor(
    make_engine: EngineFactory,
) -> None:
    """The carrier checks what any executor reports (the local one before reading)."""
    e = make_engine(ScriptedExecutor(), result_max_bytes=1000)
    template = {
        "name": "results",
        "works": [
            {
                "name": "w",
                "noop": True,
                "on_failure": "continue",
                "map": {"items": [{"result": "x" * 2000}, {"result": "y" * 10}]},
            },
        ],
    }
    wf_id, wf = e.run(template)
    assert wf.status == "partial"
    by_result = {j.args["result"][0]: j for j in jobs_of(e.db, wf_id)}
    big, small = by_result["x"], by_result["y"]
    assert (big.status, big.result) == ("failed", None)
    assert big.error is not None
    assert big.error.startswith("the result is more than 1,000 bytes as JSON, more than the limit")
    assert (small.status, small.result) == ("succeeded", "y" * 10)


@pytest.mark.parametrize("executor_name", ["local"])
def test_a_big_result_file_fails_the_job_and_the_agent_goes_on(
    make_engine: EngineFactory, executor_name: str
) -> None:
    e = make_engine(executor_name, result_max_bytes=1000)
    write = (
        "import json, os, sys\n"
        "json.dump('x' * int(sys.argv[1]), open(os.environ['ORCHID_RESULT_FILE'], 'w'))"
    )
    template = {
        "name": "results",
        "works": [
            {"name": "big", "command": python_cmd(write, "100000"), "on_failure": "continue"},
            {"name": "next", "command": python_cmd(write, "10"), "after": ["big"]},
        ],
    }
    template["works"][1]["trigger"] = "all_done"
    wf_id, wf = e.run(template)
    assert wf.status == "partial", wf.message
    jobs = {j.work_name: j for j in jobs_of(e.db, wf_id)}
    assert jobs["big"].status == "failed"
    assert jobs["big"].error is not None
    assert jobs["big"].error.startswith("the result is 100,002 bytes as JSON, more than")
    assert (jobs["next"].status, jobs["next"].result) == ("succeeded", "x" * 10)


@pytest.mark.parametrize("executor_name", ["local"])
def test_a_nul_character_from_a_binding_fails_the_job_cleanly(
    make_engine: EngineFactory, executor_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Submission refuses NUL characters; one made at run time fails its job, no traceback."""
    e = make_engine(executor_name)
    template: dict[str, Any] = {
        "name": "nul",
        "works": [
            {"name": "up", "command": python_cmd('print(\'{"s": "a\\\\u0000b"}\')')},
            {
                "name": "down",
                "command": [sys.executable, "-c", "pass", "{s}"],
                "parameters": {"s": "${works.up.outputs.s}"},
                "after": ["up"],
            },
        ],
    }
    wf_id, wf = e.run(template)
    assert wf.status == "failed"
    jobs = {j.work_name: j for j in jobs_of(e.db, wf_id)}
    assert jobs["up"].result == {"s": "a\x00b"}, json.dumps(jobs["up"].result)
    assert jobs["down"].status == "failed"
    assert jobs["down"].error == (
        "item 3 of the command holds a NUL character (\\u0000), which the operating system "
        "cannot pass to a program"
    )
    assert not [r for r in caplog.records if r.exc_info]


def test_retry_delays_are_capped_by_the_policy(make_engine: EngineFactory) -> None:
    """`retry_delay: 1000` with `retry_max_delay: 0`: the cap reaches the store whole."""
    e = make_engine(ScriptedExecutor())
    template = {
        "name": "retry",
        "works": [
            {
                "name": "flaky",
                "noop": True,
                "parameters": {"fail_attempts": 3},
                "retries": 100,
                "retry_delay": 1000,
                "retry_max_delay": 0,
            }
        ],
    }
    wf_id, wf = e.run(template, deadline_s=30)  # a wait of 1000 s would not end in time
    assert wf.status == "succeeded"
    (job,) = jobs_of(e.db, wf_id)
    assert (job.attempt, job.max_attempts) == (4, 101)


def test_a_map_known_to_be_too_large_is_refused_at_submission(
    make_engine: EngineFactory,
) -> None:
    from orchid.errors import TemplateError

    e = make_engine("null")
    template = {
        "name": "sweep",
        "works": [
            {
                "name": "w",
                "noop": True,
                "map": {"product": {"a": "${range(2000)}", "b": list(range(1000))}},
            },
            # a module nowhere to be found: submission (what the API does) does not look
            {"name": "f", "function": "nowhere_module_xyz:fn"},
        ],
    }
    with pytest.raises(TemplateError) as caught:
        e.submit(template)
    assert [p for p, _ in caught.value.problems] == ["works[0](w).map.product"]
    assert "2,000,000 jobs" in caught.value.problems[0][1]
    template["works"][0]["map"] = {"product": {"a": "${range(2)}", "b": [1]}}
    assert e.submit(template) > 0
