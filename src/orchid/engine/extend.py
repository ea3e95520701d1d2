"""Growing a workflow while it runs: add a work, close it (Function-as-a-Task).

A workflow written as Python functions does not know its works up front: each call of a
task adds one. The work is appended to the workflow's template, so it is validated and run
exactly like a work written in a template; its listed jobs are written with it. Adding is
idempotent by name: a work that is already there (same name, same definition) is returned
as it is, which is how a restarted workflow function finds the works it made before.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from orchid.core.commands import check as check_commands
from orchid.core.jobs import JobDraft
from orchid.core.states import TERMINAL_WORKFLOW
from orchid.datamgr.registry import ManagerSpec
from orchid.engine.submit import check_data_inputs, check_size, executor_routes
from orchid.engine.templates import compile_template
from orchid.errors import InvalidTransition, TemplateError
from orchid.store import events, graph, routes, workflows, works
from orchid.store.db import Database

log = logging.getLogger(__name__)


class WorkflowEnded(InvalidTransition):
    """Works cannot be added to (or a close sent to) a workflow that has ended."""


class NotOpen(InvalidTransition):
    """Works are added only to open workflows (when asked to check: ``only_open``)."""


@dataclass(frozen=True)
class AddedWork:
    work_id: int
    name: str
    jobs: int
    created: bool  # False: it was there already
    changed: bool = False  # it was there with another definition (kept as it was)


def add_work(
    db: Database,
    workflow_id: int,
    spec: Mapping[str, Any],
    now: float,
    executors: Collection[str] | None = None,
    data_managers: Mapping[str, ManagerSpec] | None = None,
    by: tuple[str, Collection[str]] = ("", ()),
    max_works: int | None = None,
    only_open: bool = False,
) -> AddedWork:
    """Append the work ``spec`` (a template's ``works`` item) to a workflow that has not ended.

    A work of that name that is there already is returned as it is (``created`` False;
    ``changed`` if its definition differs: the name is its identity, and what it did is
    kept). Raises TemplateError if the grown template would be invalid (or names an
    executor not in ``executors``, or a data manager of ``data_managers`` that the user
    and groups ``by`` may not use, when given, or holds more than ``max_works`` works),
    WorkflowEnded if the workflow is over, NotOpen with ``only_open`` if it is not open
    (never was, or was closed).
    """
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise TemplateError([("work", "must be a mapping with a `name`, like a template's works")])
    name = spec["name"]
    if spec.get("jobs") == "from_file":
        raise TemplateError(
            [
                (
                    "work.jobs",
                    "an added work lists its jobs: `jobs: from_file` "
                    "is for templates submitted with a jobs file",
                )
            ]
        )
    if spec.get("workflow") is not None:
        raise TemplateError(
            [
                (
                    "work.workflow",
                    "a nested workflow cannot be added to a running workflow (yet): add its "
                    "works one by one, or put it in the template",
                )
            ]
        )
    with db.begin() as conn:
        status = workflows.lock_status(conn, workflow_id)
        raw, base_dir = workflows.template_of(conn, workflow_id)
        existing = next((w for w in raw.get("works", []) if w.get("name") == name), None)
        if existing is not None:
            work_id, n_jobs = works.find(conn, workflow_id, name)
            changed = existing != dict(spec)
            return AddedWork(work_id, name, n_jobs, created=False, changed=changed)
        # not open first: a workflow never submitted open says so, whether it ended yet or not
        if only_open and not workflows.is_open(conn, workflow_id):
            raise NotOpen(
                f"workflow {workflow_id} is not open: it was not submitted open, or it was "
                "closed; works are added only to open workflows"
            )
        if status in TERMINAL_WORKFLOW:
            raise WorkflowEnded(
                f"workflow {workflow_id} has ended ({status}); works cannot be added to it"
            )
        grown = {**raw, "works": [*raw.get("works", []), dict(spec)]}
        check_size(grown, max_works)
        compiled = compile_template(grown, base_dir)
        check_commands(compiled.template)
        route = executor_routes(compiled, executors).get(name)
        check_data_inputs(compiled, data_managers, by[0], by[1], only=(name,))
        w = compiled.template.work(name)
        static = isinstance(w.jobs, list)
        drafts = [
            JobDraft(work=name, name=j.name, args=j.args, parents=_parents(name, j.parents))
            for j in (w.jobs if isinstance(w.jobs, list) else [])
        ]
        workflows.set_template(conn, workflow_id, grown, now)
        ids = works.create(conn, workflow_id, [(name, 0)], frozenset({name} if static else ()), now)
        work_id = ids[(name, 0)]
        if route is not None and routes.of_workflow(conn, workflow_id).get(name) is None:
            routes.add(conn, workflow_id, {name: route})
        n_jobs = 0
        if drafts:
            counts = graph.insert_static(
                conn, workflow_id, {name: work_id}, drafts, {name: compiled.max_attempts(name)}
            )
            works.add_remaining(conn, dict(counts))
            n_jobs = sum(counts.values())
        events.emit(
            conn, workflow_id, "work.added", {"work_id": work_id, "name": name, "jobs": n_jobs}, now
        )
        workflows.wake(conn, [workflow_id])
    log.info("workflow %s: work %s added with %d listed jobs", workflow_id, name, n_jobs)
    return AddedWork(work_id, name, n_jobs, created=True)


def close(db: Database, workflow_id: int, error: str | None, now: float) -> bool:
    """No more works will be added; the workflow ends when they have (failed, with ``error``).

    Returns False if it was not open (closed already, or never open): closing is idempotent.
    """
    with db.begin() as conn:
        workflows.lock_status(conn, workflow_id)
        closed = workflows.close(conn, workflow_id, error, now)
        if closed:
            events.emit(conn, workflow_id, "workflow.closed", {"error": error}, now)
    return closed


def _parents(work: str, refs: list[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for ref in refs:
        pw, _, pj = ref.rpartition("/")
        if pw and pw != work:
            raise TemplateError(
                [
                    (
                        "work.jobs.parents",
                        f"{ref!r}: the jobs of an added work may only have parents in that work",
                    )
                ]
            )
        out.append((work, pj))
    return tuple(out)
