"""Failing tests that pin down defects found in review (each a strict xfail until fixed)."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchid.core.states import work_outcome
from orchid.errors import ConfigError, InvalidInput, TemplateError
from orchid.settings import Settings
from orchid.store import commands, release, workflows, works
from orchid.store.db import Database
from orchid.store.tables import works as works_table
from tests.engine.enginekit import (
    Engine,
    EngineFactory,
    ScriptedExecutor,
    describe,
    jobs_of,
    loops_of,
    workflow,
)


def rounds(e: Engine, n: int = 60) -> None:
    """Run the agents a bounded number of rounds (enough to settle these small workflows)."""
    for _ in range(n):
        e.runner.run_once()


def remaining_of(db: Database, wf_id: int) -> dict[str, int]:
    with db.begin() as conn:
        rows = conn.execute(
            sa.select(works_table.c.name, works_table.c.remaining).where(
                works_table.c.workflow_id == wf_id
            )
        )
        return {str(r.name): int(r.remaining) for r in rows}


# --- priority 1: crashes, races, counters -------------------------------------------------


def test_retry_before_the_trigger_saw_the_failure_still_ends(make_engine: EngineFactory) -> None:
    ex = ScriptedExecutor()
    e = make_engine(ex)
    clerk, transformer, carrier, _trigger, *_ = e.runner.agents
    wf_id = e.submit(
        {
            "name": "retry-race",
            "works": [
                {
                    "name": "a",
                    "noop": True,
                    "map": {"items": [{"fail_attempts": 1}, {"hold": True}]},
                },
                {"name": "b", "noop": True, "after": ["a"]},
            ],
        }
    )
    clerk.run_once()
    transformer.run_once()
    carrier.run_once()  # submits both jobs
    carrier.run_once()  # records: job 0 failed (no retries left), job 1 running
    with e.db.begin() as conn:
        commands.add(conn, wf_id, "retry", time.time())
    clerk.run_once()  # the retry is applied before the trigger passed the failure on
    ex.release()
    rounds(e)
    assert workflow(e.db, wf_id).status == "succeeded", (
        f"{describe(e.db, wf_id)}\n  remaining {remaining_of(e.db, wf_id)}"
    )


@pytest.mark.parametrize(
    "db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_release_racing_the_transformer_of_the_childs_work(
    make_engine: EngineFactory, second_db: Database
) -> None:
    ex = ScriptedExecutor()
    e = make_engine(ex)
    clerk, transformer, carrier, _trigger, *_ = e.runner.agents
    wf_id = e.submit(
        {
            "name": "release-race",
            "works": [
                {"name": "a", "noop": True, "jobs": [{"name": "j1"}]},
                {"name": "b", "noop": True, "jobs": [{"name": "k1", "parents": ["a/j1"]}]},
            ],
        }
    )
    clerk.run_once()  # a and b are ready (b waits for no work, only for job a/j1)
    now = time.time()
    with e.db.begin() as conn:
        (row,) = works.claim_ready(conn, "review-t1", now, 30.0, 1)  # work a
        transformer._transform(conn, row)  # type: ignore[attr-defined]
    carrier.pass_on = False  # type: ignore[attr-defined]  # leave the release to the trigger
    carrier.run_once()
    carrier.run_once()  # a/j1 succeeded; the trigger has not passed it on yet

    with e.db.engine.connect() as conn_t, second_db.engine.connect() as conn_g:
        tx_t, tx_g = conn_t.begin(), conn_g.begin()
        conn_t.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
        conn_g.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
        (row,) = works.claim_ready(conn_t, "review-t2", now, 30.0, 1)  # transformer takes b
        # the trigger passes a/j1 on while the transformer holds work b: it must wait for
        # the transformer's commit (and then see b running) rather than miss its write
        result: list[release.Propagation] = []
        trigger = threading.Thread(
            target=lambda: result.append(release.propagate(conn_g, now, 100))
        )
        trigger.start()
        trigger.join(0.5)
        assert trigger.is_alive(), "the trigger did not wait for the transformer's work lock"
        transformer._transform(conn_t, row)  # type: ignore[attr-defined]
        tx_t.commit()
        trigger.join(10)
        (p,) = result
        done = works.add_remaining(conn_g, {w: -n for w, n in p.remaining.items()})
        for wid in done:
            works.finish(conn_g, wid, work_outcome(works.counts(conn_g, wid)), "", now)
        workflows.wake(conn_g, [wf_id])
        tx_g.commit()

    rounds(e)
    assert workflow(e.db, wf_id).status == "succeeded", describe(e.db, wf_id)


@pytest.fixture
def second_db(db: Database) -> Any:
    other = Database(db.url)
    yield other
    other.dispose()


# --- non-JSON numbers: poison rows on PostgreSQL --------------------------------------------


def test_a_binding_that_is_not_a_json_number_fails_the_work(make_engine: EngineFactory) -> None:
    e = make_engine()
    template = {
        "name": "inf",
        "works": [{"name": "a", "noop": True, "parameters": {"x": "${1e308 * 10}"}}],
    }
    wf_id, wf = e.run(template)
    assert wf.status == "failed", describe(e.db, wf_id)


@pytest.mark.parametrize(
    "db", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_large_float_parameter_stays_a_float(make_engine: EngineFactory) -> None:
    e = make_engine(ScriptedExecutor())
    template = {
        "name": "big",
        "parameters": {"x": 1e20},
        "works": [{"name": "a", "noop": True, "parameters": {"result": "${params.x}"}}],
    }
    wf_id, _ = e.run(template)
    (job,) = jobs_of(e.db, wf_id)
    assert isinstance(job.args["result"], float), job.args
    assert isinstance(job.result, float), job.result


def test_a_nan_printed_by_a_command_is_not_taken_as_its_result(
    make_engine: EngineFactory,
) -> None:
    e = make_engine("local")
    wf_id, wf = e.run({"name": "nan", "works": [{"name": "a", "command": ["echo", "NaN"]}]})
    assert wf.status == "succeeded", describe(e.db, wf_id)
    (job,) = jobs_of(e.db, wf_id)
    assert job.result is None  # "NaN" is not JSON, so the job has no result


def test_submit_rejects_a_nan_parameter(make_engine: EngineFactory) -> None:
    e = make_engine()
    with pytest.raises(InvalidInput):
        e.submit(
            {"name": "p", "parameters": {"x": 1}, "works": [{"name": "a", "noop": True}]},
            {"x": math.nan},
        )


# --- priority 2: promised semantics --------------------------------------------------------


def test_retry_reopens_a_loop_skipped_because_of_a_failure(make_engine: EngineFactory) -> None:
    e = make_engine(ScriptedExecutor())
    template = {
        "name": "retry-loop",
        "works": [
            {
                "name": "a",
                "noop": True,
                "on_failure": "continue",
                "parameters": {"fail_attempts": 1},
            },
            {"name": "body", "noop": True},
        ],
        "loops": [
            {"name": "L", "works": ["body"], "after": ["a"], "until": "true", "max_iterations": 2}
        ],
    }
    wf_id, wf = e.run(template)
    assert wf.status == "partial"
    assert loops_of(e.db, wf_id)["L"]["status"] == "skipped"
    with e.db.begin() as conn:
        commands.add(conn, wf_id, "retry", time.time())
    rounds(e, 5)  # the workflow is terminal: drain alone would return before the retry
    wf = e.drain(wf_id)
    ran = [j for j in jobs_of(e.db, wf_id) if j.work_name == "body"]
    assert loops_of(e.db, wf_id)["L"]["status"] == "succeeded", describe(e.db, wf_id)
    assert [str(j.status) for j in ran] == ["succeeded"]


def test_retry_does_not_resume_a_suspended_workflow(make_engine: EngineFactory) -> None:
    ex = ScriptedExecutor()
    e = make_engine(ex)
    wf_id = e.submit(
        {
            "name": "susp",
            "works": [
                {"name": "a", "noop": True, "parameters": {"hold": True}},
                {"name": "b", "noop": True, "after": ["a"]},
            ],
        }
    )
    rounds(e, 5)
    with e.db.begin() as conn:
        commands.add(conn, wf_id, "suspend", time.time())
    rounds(e, 5)
    assert workflow(e.db, wf_id).status == "suspended"
    with e.db.begin() as conn:
        commands.add(conn, wf_id, "retry", time.time())
    rounds(e, 5)
    assert workflow(e.db, wf_id).status == "suspended"


def test_a_computed_work_name_is_refused_before_it_runs(make_engine: EngineFactory) -> None:
    e = make_engine(ScriptedExecutor())
    template = {
        "name": "dyn",
        "parameters": {"w": "a"},
        "works": [
            {"name": "a", "noop": True, "parameters": {"result": 5}},
            {"name": "b", "noop": True, "after": ["a"], "when": "works[params.w].outputs == 5"},
        ],
    }
    # its results could not be loaded (nobody knows which work it reads): say so up front
    with pytest.raises(TemplateError, match=r"name the work: works\.NAME"):
        e.submit(template)


# --- priority 3: bad input reaching a hang or a traceback ------------------------------------


@pytest.mark.parametrize(
    "name, value",
    [("ORCHID_BATCH", "0"), ("ORCHID_LEASE_SECONDS", "-5"), ("ORCHID_POLL_INTERVAL", "-1")],
)
def test_settings_reject_values_that_stop_the_engine(name: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Settings.load(env={name: value}, home=tmp_path)


@pytest.mark.parametrize(
    "args",
    [
        ["logs", "99999999999999999999"],
        ["status", "--db", "/proc/no/such.db"],
    ],
)
def test_cli_bad_ids_and_databases_are_clear_errors(args: list[str], tmp_path: Path) -> None:
    env = {"ORCHID_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "COLUMNS": "120"}
    env["ORCHID_DB_URL"] = f"sqlite:///{tmp_path / 'o.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "orchid.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in proc.stderr
    assert "error" in proc.stderr.lower()


def test_a_failure_in_an_earlier_loop_iteration_makes_the_workflow_partial(
    make_engine: EngineFactory,
) -> None:
    e = make_engine(ScriptedExecutor())
    template = {
        "name": "loop-fail",
        "works": [
            {
                "name": "body",
                "noop": True,
                "on_failure": "continue",
                "parameters": {"fail_attempts": "${1 - loop.iteration}"},  # fails only first
            }
        ],
        "loops": [
            {"name": "L", "works": ["body"], "until": "loop.iteration >= 1", "max_iterations": 3}
        ],
    }
    wf_id, wf = e.run(template)
    assert sorted(str(j.status) for j in jobs_of(e.db, wf_id)) == ["failed", "succeeded"]
    assert wf.status == "partial", describe(e.db, wf_id)


def test_testing_outputs_match_expression_outputs(tmp_path: Path) -> None:
    from orchid.testing import run_workflow

    template = {"name": "one", "works": [{"name": "a", "noop": True, "map": {"items": [{}]}}]}
    result = run_workflow(template, home=tmp_path, executor="null", timeout=30)
    assert result.status == "succeeded"
    assert result.outputs("a") == [None]


@pytest.mark.parametrize("kind", ["directory", "binary"])
def test_an_unreadable_jobs_file_is_a_template_error(make_engine: EngineFactory, kind: str) -> None:
    e = make_engine()
    target = e.base_dir / "jobs.jsonl"
    if kind == "directory":
        target.mkdir()
    else:
        target.write_bytes(b"\xff\xfe\x00 not text\n")
    with pytest.raises(InvalidInput):
        e.submit(
            {
                "name": "jf",
                "works": [{"name": "a", "noop": True, "jobs": "from_file"}],
                "jobs_file": "jobs.jsonl",
            }
        )
