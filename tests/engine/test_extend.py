"""Open workflows: works added while they run, closing, and the template cache that follows."""

from __future__ import annotations

import pytest

from orchid.engine import extend
from orchid.errors import TemplateError
from tests.engine.enginekit import EngineFactory, jobs_of, workflow, works_of

NOOP_JOBS = {"name": "a", "noop": True, "jobs": [{"name": "0"}, {"name": "1"}]}


def test_an_open_workflow_runs_added_works_and_ends_once_closed(make_engine: EngineFactory) -> None:
    eng = make_engine()
    wf = eng.submit({"name": "grow", "open": True, "works": []})
    eng.runner.run_once()
    assert extend.add_work(eng.db, wf, NOOP_JOBS, 1.0).created
    eng.run_until(wf, lambda: works_of(eng.db, wf)[0].status == "succeeded")
    for _ in range(5):
        eng.runner.run_once()
    assert workflow(eng.db, wf).status == "running"  # open: more may come
    second = extend.add_work(eng.db, wf, {**NOOP_JOBS, "name": "b"}, 2.0)
    assert second.jobs == 2
    again = extend.add_work(eng.db, wf, NOOP_JOBS, 3.0)
    assert (again.created, again.changed, again.work_id) == (
        False,
        False,
        works_of(eng.db, wf)[0].id,
    )
    changed = extend.add_work(eng.db, wf, {**NOOP_JOBS, "description": "other"}, 3.0)
    assert (changed.created, changed.changed) == (False, True)
    assert extend.close(eng.db, wf, None, 4.0)
    assert not extend.close(eng.db, wf, None, 4.0)  # closing again is harmless
    assert eng.drain(wf).status == "succeeded"
    assert sorted(j.work_name for j in jobs_of(eng.db, wf)) == ["a", "a", "b", "b"]
    with pytest.raises(extend.WorkflowEnded):
        extend.add_work(eng.db, wf, {**NOOP_JOBS, "name": "c"}, 5.0)


def test_closing_with_an_error_fails_the_workflow(make_engine: EngineFactory) -> None:
    eng = make_engine()
    wf = eng.submit({"name": "grow", "open": True, "works": []})
    extend.close(eng.db, wf, "the workflow function raised KeyError: 'x'", 1.0)
    done = eng.drain(wf)
    assert (done.status, done.message) == ("failed", "the workflow function raised KeyError: 'x'")


def test_added_works_are_validated_like_templates(make_engine: EngineFactory) -> None:
    eng = make_engine()
    wf = eng.submit({"name": "grow", "open": True, "works": []})
    with pytest.raises(TemplateError, match=r"works\[0\]\(a\).after\[0\]: no work or loop"):
        extend.add_work(eng.db, wf, {"name": "a", "noop": True, "after": ["ghost"]}, 1.0)
    with pytest.raises(TemplateError, match=r"jobs\[0\].parents\[0\]"):
        extend.add_work(
            eng.db,
            wf,
            {"name": "a", "noop": True, "jobs": [{"name": "0", "parents": ["x/1"]}]},
            1.0,
        )
    with pytest.raises(TemplateError, match=r"work.workflow: a nested workflow cannot be added"):
        extend.add_work(
            eng.db, wf, {"name": "n", "workflow": {"works": [{"name": "x", "noop": True}]}}, 1.0
        )
    assert works_of(eng.db, wf) == []  # nothing half written


def test_a_template_workflow_ends_on_its_own(make_engine: EngineFactory) -> None:
    eng = make_engine()
    _, done = eng.run({"name": "plain", "works": [{"name": "a", "noop": True}]})
    assert done.status == "succeeded"


def test_only_open_workflows_take_works_when_asked(make_engine: EngineFactory) -> None:
    eng = make_engine()
    plain = eng.submit({"name": "plain", "works": [{"name": "a", "noop": True, "after": []}]})
    with pytest.raises(extend.NotOpen, match="is not open"):
        extend.add_work(eng.db, plain, {"name": "b", "noop": True}, 1.0, only_open=True)
    grow = eng.submit({"name": "grow", "open": True, "works": []})
    assert extend.add_work(eng.db, grow, NOOP_JOBS, 1.0, only_open=True).created
    extend.close(eng.db, grow, None, 2.0)
    with pytest.raises(extend.NotOpen, match="or it was closed"):
        extend.add_work(eng.db, grow, {**NOOP_JOBS, "name": "b"}, 3.0, only_open=True)
    # the same work again is found, open or not (idempotent by name)
    assert not extend.add_work(eng.db, grow, NOOP_JOBS, 4.0, only_open=True).created
    assert works_of(eng.db, plain)[0].name == "a" and len(works_of(eng.db, plain)) == 1
