"""Executors chosen per work: named in the settings file, routed by the template's `executor`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchid.engine.runner import make_runner
from orchid.engine.submit import submit
from orchid.errors import TemplateError
from orchid.settings import Settings
from orchid.store.db import Database
from tests.engine.enginekit import drain, jobs_of

SETTINGS = """
executor = "local"
workers = 2
[executors.instant]
type = "null"
[executors.spare]
type = "local"
workers = 1
"""


def settings(db: Database, home: Path) -> Settings:
    home.mkdir(parents=True, exist_ok=True)
    (home / "settings.toml").write_text(SETTINGS)
    return Settings.load(env={}, db=db.url, home=home, poll_interval=0.05)


def test_each_work_runs_on_its_executor(db: Database, tmp_path: Path) -> None:
    s = settings(db, tmp_path / "home")
    assert s.executor_names == {"local", "null", "instant", "spare"}
    template = {
        "name": "routed",
        "works": [
            {
                "name": "fast",
                "executor": "instant",
                "command": ["false"],
                "map": {"items": [{}] * 3},
            },
            {"name": "here", "command": ["python", "-c", "print(1)"], "after": ["fast"]},
            {"name": "other", "executor": "spare", "command": ["python", "-c", "print(2)"]},
        ],
    }
    wf = submit(db, template, base_dir=tmp_path, now=time.time(), executors=s.executor_names)
    runner = make_runner(s, db)
    ex = runner.executor
    try:
        assert {a.name for a in runner.agents}.issuperset({"carrier"})
        carriers = [a for a in runner.agents if a.name == "carrier"]
        assert sorted(c.executor.name for c in carriers) == ["instant", "local", "spare"]  # type: ignore[attr-defined]
        assert drain(runner, db, wf, idle_sleep=0.01).status == "succeeded"
    finally:
        ex.close()
        runner.close()
    by_work = {j.work_name: j for j in jobs_of(db, wf)}
    # `false` would fail anywhere but on the null executor, which runs nothing
    assert by_work["fast"].status == "succeeded" and by_work["fast"].log_uri is None
    assert by_work["here"].result == 1 and by_work["here"].log_uri
    assert by_work["other"].result == 2 and by_work["other"].log_uri


def test_a_work_naming_an_unknown_executor_is_refused(db: Database, tmp_path: Path) -> None:
    s = settings(db, tmp_path / "home")
    template = {
        "name": "typo",
        "works": [{"name": "a", "noop": True}, {"name": "b", "noop": True, "executor": "instnt"}],
    }
    with pytest.raises(TemplateError) as caught:
        submit(db, template, base_dir=tmp_path, now=time.time(), executors=s.executor_names)
    (path, message), *rest = caught.value.problems
    assert not rest
    assert path == "works[1](b).executor"
    assert "did you mean 'instant'?" in message and "instant, local, null, spare" in message


def test_the_default_executor_of_a_template_is_checked_once(db: Database, tmp_path: Path) -> None:
    s = settings(db, tmp_path / "home")
    template = {
        "name": "typo",
        "defaults": {"executor": "dusk"},
        "works": [{"name": "a", "noop": True}, {"name": "b", "noop": True}],
    }
    with pytest.raises(TemplateError) as caught:
        submit(db, template, base_dir=tmp_path, now=time.time(), executors=s.executor_names)
    assert [p for p, _ in caught.value.problems] == ["defaults.executor"]


def test_an_added_work_is_routed_and_checked(db: Database, tmp_path: Path) -> None:
    from orchid.engine import extend
    from orchid.store import routes

    s = settings(db, tmp_path / "home")
    template = {"name": "growing", "open": True, "works": []}
    wf = submit(db, template, base_dir=tmp_path, now=time.time(), executors=s.executor_names)
    with pytest.raises(TemplateError, match="no executor is named 'nowhere'"):
        extend.add_work(
            db,
            wf,
            {"name": "a", "noop": True, "executor": "nowhere"},
            time.time(),
            s.executor_names,
        )
    extend.add_work(
        db, wf, {"name": "b", "noop": True, "executor": "spare"}, time.time(), s.executor_names
    )
    with db.begin() as conn:
        assert routes.of_workflow(conn, wf) == {"b": "spare"}


def test_task_works_carry_their_executor() -> None:
    from orchid.fat.definitions import make_policy

    policy = make_policy(
        executor="cluster",
        cores=1,
        memory_mb=None,
        gpus=0,
        walltime=None,
        queue=None,
        retries=0,
        retry_delay=1.0,
        env=None,
        include=(),
        exclude=(),
        decorator="task",
    )
    from types import SimpleNamespace

    from orchid.fat.runtime import work_spec

    backend = SimpleNamespace(job_env=dict, remote=False)
    work = work_spec("t", "", policy, "-", "m:f", [], backend)  # type: ignore[arg-type]
    assert work["executor"] == "cluster"  # the template field the carrier routes by
