"""An iDDS ``Workflow`` as an Orchid template: DOMA works as job-level DAGs, generic works
as commands, conditions as ``after`` and ``trigger``, a loop condition as a loop, a
``Workflow``, ``SubWorkflow`` or ``LoopWorkflow`` among the works as a nested workflow
(``workflow:``; its loop condition a loop of it, inside a loop if the workflow has one too).
Pure."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from orchid.core.idds._data import (
    DOMA_WORK,
    GENERIC_WORKS,
    HPO_WORK,
    LOOP_WORKFLOW,
    STAGEIN_WORK,
    SUB_WORKFLOW,
    WORKFLOW,
    IddsError,
    attrs,
    describe,
    dotted,
    enum_value,
    is_object,
    job_name,
    kind_of,
    listed,
    unzip,
    work_name,
)
from orchid.core.idds._hpo import hpo_block
from orchid.core.validate import MAX_NESTED_ITERATIONS

# how a Condition's method on a work becomes Orchid's trigger on that work (true branch,
# false branch); None: the branch cannot be said with a trigger
TRIGGERS: Mapping[str, tuple[str | None, str | None]] = {
    "is_finished": ("all_success", "one_failed"),
    "is_terminated": ("all_done", None),
    "is_failed": ("one_failed", "all_success"),
}
# the same over several works, joined by And or Or: only where a trigger means exactly that
SEVERAL: Mapping[tuple[str, str], tuple[str | None, str | None]] = {
    ("is_finished", "and"): ("all_success", "one_failed"),  # not all succeeded: one failed
    ("is_finished", "or"): ("one_success", None),
    ("is_failed", "and"): (None, None),
    ("is_failed", "or"): ("one_failed", "all_success"),
    ("is_terminated", "and"): ("all_done", None),
    ("is_terminated", "or"): (None, None),
}
MAX_JOBS = 2_000_000
MAX_NESTING = 8  # workflows inside workflows (the template language's bound too)
NESTED = (WORKFLOW, SUB_WORKFLOW, LOOP_WORKFLOW)  # iDDS LoopWorkflow adds nothing to Workflow
IN_PLACEHOLDER = "${IN/L}"  # where a DOMA job's pseudo input name goes in its command


def translate_workflow(node: Any, body: Mapping[str, Any], rucio_manager: str) -> dict[str, Any]:
    """The template of a ``Workflow`` (``rucio_manager``: the data manager of stage-in
    works)."""
    if not is_object(node) or kind_of(node) != WORKFLOW:
        got = dotted(kind_of(node)) if is_object(node) else type(node).__name__
        raise IddsError(f"request_metadata.workflow: expected a Workflow, got {got}")
    top = attrs(node, "workflow")
    base = attrs(top.get("template"), "workflow.template")
    works, loops = _scope(top, base, "workflow", rucio_manager, 0, MAX_NESTED_ITERATIONS)
    wf_name = base.get("_name") or top.get("_name") or body.get("name") or "idds-request"
    out: dict[str, Any] = {
        "name": work_name(wf_name),
        "description": f"{describe(body)}, translated from iDDS",
        "works": works,
    }
    if loops:
        out["loops"] = loops
    if _open(top, base):
        out["open"] = True
    return out


def _scope(
    top: Mapping[str, Any],
    base: Mapping[str, Any],
    where: str,
    rucio_manager: str,
    depth: int,
    budget: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The works and loops of one workflow (``top``, its template ``base``); a workflow
    among its works becomes a nested workflow, translated the same way. ``budget``: the
    iterations the loops around it leave (loops inside loops share MAX_NESTED_ITERATIONS)."""
    if top.get("_loop_condition"):
        raise IddsError(f"{where}: a loop condition outside the workflow's template")
    bound = min(MAX_LOOP_ITERATIONS, budget)
    if base.get("_loop_condition"):
        if bound < 2:
            raise IddsError(
                f"{where}.loop_condition: loops inside loops this deep could not repeat "
                f"(together at most {MAX_NESTED_ITERATIONS:,} iterations; docs/from-idds.md)"
            )
        budget //= bound
    for key in ("parameter_links", "parameter_links_source", "parameter_links_destination"):
        if base.get(key):
            raise IddsError(
                f"{where}.{key}: parameter links between works are not supported by the "
                "translation yet (docs/from-idds.md)"
            )
    works_in = base.get("_works") or {}
    if not isinstance(works_in, dict) or (not works_in and not (depth == 0 and _open(top, base))):
        raise IddsError(f"{where}: it has no works")
    # first the names, so that dependency maps can name the tasks they depend on
    names: dict[str, str] = {}  # internal id -> Orchid work name
    by_task: dict[str, str] = {}  # iDDS task name -> Orchid work name
    for internal_id, work in works_in.items():
        task = _task_of(work, f"{where}.works.{internal_id}", internal_id)
        name = work_name(task)
        if name in names.values():
            name = work_name(f"{task}_{internal_id}")
        names[internal_id] = name
        by_task[str(task)] = name
        if work["attributes"].get("orig_task_name"):
            by_task.setdefault(str(work["attributes"]["orig_task_name"]), name)
    works = []
    for i, work in works_in.items():
        if kind_of(work) in NESTED:
            where_i = f"{where}.works.{i}"
            works.append(_nested(work, names[i], where_i, rucio_manager, depth, budget))
        else:
            works.append(_work(work, names[i], by_task, rucio_manager))
    _conditions(base, names, {w["name"]: w for w in works})
    loops = []
    if base.get("_loop_condition"):
        loop = _loop(base, names, [w["name"] for w in works], bound)
        loops.append(loop)
        for w in works:  # the iteration that ends the loop may be one that failed
            if f"works['{w['name']}']" in loop["until"]:
                _go_on(w)
    return works, loops


def _nested(
    work: Mapping[str, Any], name: str, where: str, rucio_manager: str, depth: int, budget: int
) -> dict[str, Any]:
    """A ``Workflow`` or ``SubWorkflow`` added as a work of another: a nested workflow."""
    if depth + 1 > MAX_NESTING:
        raise IddsError(f"{where}: workflows nest more than {MAX_NESTING} deep")
    top = attrs(work, where)
    base = attrs(top.get("template"), f"{where}.template")
    works, loops = _scope(top, base, where, rucio_manager, depth + 1, budget)
    inner: dict[str, Any] = {"works": works}
    if loops:
        inner["loops"] = loops
    return {"name": name, "description": f"iDDS {work['class']}", "workflow": inner}


def _go_on(spec: dict[str, Any]) -> None:
    """A work whose failure must not end the workflow (a branch or a loop reads it): a
    nested workflow's failure is that of its works, which then all go on."""
    if "workflow" in spec:
        for inner in spec["workflow"]["works"]:
            _go_on(inner)
    else:
        spec["on_failure"] = "continue"


def _open(top: Mapping[str, Any], base: Mapping[str, Any]) -> bool:
    """Does the client keep the request open for works added later (``submit_work``)?
    It says so with ``workflow.open = True`` (an attribute of its own, read as data)."""
    return top.get("open") is True or base.get("open") is True


def _task_of(work: Any, what: str, internal_id: str) -> str:
    """The task name of an iDDS work (its Orchid work name, made to fit): its
    ``task_name``, else its ``work_name``, else one made of its kind and internal id; a
    ``Workflow`` or ``SubWorkflow`` among the works: its template's name."""
    if not is_object(work):
        raise IddsError(f"{what}: expected an iDDS work")
    kind = kind_of(work)
    if kind not in (DOMA_WORK, STAGEIN_WORK, HPO_WORK, *NESTED) and kind not in GENERIC_WORKS:
        raise IddsError(f"{what}: class {dotted(kind)} is not a work Orchid runs")
    a = work["attributes"]
    if kind in NESTED:  # its name is its template's
        a = attrs(a.get("template"), f"{what}.template")
        given = a.get("_name")
    else:
        meta = attrs(a.get("_metadata"), f"{what}._metadata") if a.get("_metadata") else {}
        given = meta.get("work_name")
    if given == internal_id:  # iDDS names an unnamed work by its id
        given = None
    label = {DOMA_WORK: "task", STAGEIN_WORK: "stagein", HPO_WORK: "hpo"}.get(kind, "work")
    label = "workflow" if kind in NESTED else label
    return str(a.get("task_name") or given or f"{label}_{internal_id}")


def _work(
    work: Mapping[str, Any], name: str, by_task: Mapping[str, str], rucio_manager: str
) -> dict[str, Any]:
    """The Orchid work of one iDDS work (checked by :func:`_task_of`), not a nested
    workflow (:func:`_nested`)."""
    kind = kind_of(work)
    if kind == DOMA_WORK:
        return _doma(work, name, by_task)
    if kind == STAGEIN_WORK:
        return _stagein(work, name, rucio_manager)
    if kind == HPO_WORK:
        hpo = hpo_block(work["attributes"], f"work {name}")
        return {"name": name, "description": "ATLASHPOWork", "hpo": hpo}
    return _command(work, name)


class _Tasks(dict[str, str]):
    """Orchid work names by task name; a task name that had to be made to fit is found by
    the name it was given (the template keeps only that)."""

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        found = super().get(key)
        if found is None:
            found = super().get(work_name(key))
        return found if found is not None else default


def translate_added_work(
    node: Any, template: Mapping[str, Any], rucio_manager: str = "rucio"
) -> dict[str, Any]:
    """The Orchid work of a work added to a running request (``submit_work``'s
    ``transform_metadata.work``), for the request's translated ``template``.

    Translated as :func:`translate_workflow` translates a work. A DOMA job whose parents
    are jobs of works already in the request cannot wait for those jobs themselves (an
    added work's jobs have parents only in that work): the added work waits for those
    works to have finished (``after``, ``all_success``), and each such parent must be a job
    listed there. Raises IddsError.
    """
    what = "transform_metadata.work"
    if not is_object(node):
        raise IddsError(f"{what}: expected an iDDS work ({{class, module, attributes}})")
    if kind_of(node) in NESTED:
        raise IddsError(
            f"{what}: a {kind_of(node)[1]} nested as a work cannot be added to a running "
            "request by Orchid yet; submit it with the request's workflow (docs/from-idds.md)"
        )
    internal_id = str(node["attributes"].get("internal_id") or "added")
    task = _task_of(node, what, internal_id)
    existing = {str(w.get("name")): w for w in template.get("works", [])}
    name = work_name(task)
    by_task = _Tasks({n: n for n in existing})
    by_task[task] = name
    spec = _work(node, name, by_task, rucio_manager)
    after: list[str] = []
    for job in spec.get("jobs", []):
        own = []
        for ref in job["parents"]:
            parent_work, _, parent = ref.rpartition("/")
            if not parent_work:
                own.append(ref)
                continue
            listed_jobs = existing[parent_work].get("jobs")
            if not isinstance(listed_jobs, list) or not any(
                isinstance(j, dict) and j.get("name") == parent for j in listed_jobs
            ):
                raise IddsError(
                    f"work {name}: job {job['name']} depends on {parent!r} of task "
                    f"{parent_work}, which has no such job"
                )
            if parent_work not in after:
                after.append(parent_work)
        job["parents"] = own
    if after:
        spec["after"] = after
        spec["trigger"] = "all_success"
    return spec


# an iDDS condition method as an Orchid expression over the work's status
STATUS_TESTS: Mapping[str, str] = {
    "is_finished": "works['{w}'].status == 'succeeded'",
    "is_failed": "works['{w}'].status == 'failed'",
    "is_terminated": "works['{w}'].status in ['succeeded', 'failed', 'partial', 'cancelled', "
    "'skipped']",
}
MAX_LOOP_ITERATIONS = 1000  # iDDS bounds no loop; an Orchid loop must be


def _loop(
    base: Mapping[str, Any], names: Mapping[str, str], works: list[str], bound: int
) -> dict[str, Any]:
    """A workflow with a loop condition (checked at its end) repeats all its works while
    the condition holds: an Orchid loop over every work, until it no longer does."""
    what = "workflow.loop_condition"
    if base.get("_loop_condition_position", "end") != "end":
        raise IddsError(f"{what}: only loop conditions checked at the end are supported")
    a = attrs(base["_loop_condition"], what)
    tests = [STATUS_TESTS[m].format(w=w) for m, w in _tests(a, names, STATUS_TESTS, what)]
    joined = (" or " if enum_value(a.get("operator")) == 1 else " and ").join(tests)
    return {
        "name": "idds_loop",
        "works": works,
        "until": f"not ({joined})",
        "max_iterations": bound,
    }


def _tests(
    a: Mapping[str, Any], names: Mapping[str, str], known: Mapping[str, Any], what: str
) -> list[tuple[str, str]]:
    """A condition's tests, (iDDS method, Orchid work name) each: one level of methods
    ``known`` says, on works of this workflow, at least one."""
    out = []
    for item in listed(a.get("_conditions"), f"{what}.conditions"):
        if not isinstance(item, dict) or "idds_method" not in item:
            raise IddsError(f"{what}: nested conditions are not supported by Orchid yet")
        src = str(item.get("idds_method_internal_id", item.get("idds_method_class_id")))
        if src not in names:
            raise IddsError(f"{what}: it names a work ({src}) this workflow does not hold")
        if item["idds_method"] not in known:
            raise IddsError(
                f"{what}: the condition {item['idds_method']} is not supported; Orchid "
                f"takes {', '.join(sorted(known))}"
            )
        out.append((str(item["idds_method"]), names[src]))
    if not out:
        raise IddsError(f"{what}: it tests nothing")
    return out


def _escaped(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _command_of(a: Mapping[str, Any], what: str) -> list[str]:
    text = " ".join(str(x) for x in (a.get("executable"), a.get("arguments")) if x)
    if not text.strip():
        raise IddsError(f"{what}: it has no executable")
    # literal braces stay literal; the DOMA placeholder becomes the job argument `input`
    text = _escaped(text).replace(_escaped(IN_PLACEHOLDER), "{input}")
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise IddsError(
            f"{what}: executable and arguments do not split like a shell: {exc}"
        ) from None


def _resources(a: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cores = a.get("core_count")
    if isinstance(cores, int) and cores >= 1:
        out["cores"] = cores
    rss = a.get("task_rss")
    if isinstance(rss, int) and rss >= 1:
        out["memory_mb"] = rss
    queue = a.get("task_queue") or a.get("queue")
    if isinstance(queue, str) and queue:
        out["queue"] = queue
    return out


def _doma(work: Mapping[str, Any], name: str, by_task: Mapping[str, str]) -> dict[str, Any]:
    a = work["attributes"]
    what = f"work {name}"
    dep_map = unzip(a.get("_dependency_map", a.get("dependency_map")), f"{what}.dependency_map")
    if not isinstance(dep_map, list) or not dep_map:
        raise IddsError(f"{what}: its dependency_map lists no jobs")
    if len(dep_map) > MAX_JOBS:
        raise IddsError(f"{what}: more than {MAX_JOBS:,} jobs")
    jobs = []
    seen: dict[str, str] = {}
    for k, entry in enumerate(dep_map):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise IddsError(f"{what}.dependency_map[{k}]: expected {{name, dependencies}}")
        job = job_name(entry["name"])
        if job in seen:
            raise IddsError(f"{what}.dependency_map[{k}]: job {entry['name']!r} is listed twice")
        seen[job] = entry["name"]
        parents = []
        deps = listed(entry.get("dependencies"), f"{what}.dependency_map[{k}].dependencies")
        for d, dep in enumerate(deps):
            if not isinstance(dep, dict) or "task" not in dep or "inputname" not in dep:
                raise IddsError(
                    f"{what}.dependency_map[{k}].dependencies[{d}]: expected {{task, inputname}}"
                )
            parent_work = by_task.get(str(dep["task"]))
            if parent_work is None:
                raise IddsError(
                    f"{what}.dependency_map[{k}].dependencies[{d}]: task {dep['task']!r} is "
                    "not a work of this workflow"
                )
            parent = job_name(dep["inputname"])
            parents.append(parent if parent_work == name else f"{parent_work}/{parent}")
        jobs.append({"name": job, "args": {"input": entry["name"]}, "parents": parents})
    out: dict[str, Any] = {
        "name": name,
        "description": f"DomaPanDAWork {a.get('task_name') or name}",
        "command": _command_of(a, what),
        "jobs": jobs,
        "on_failure": "continue",  # iDDS lets a DOMA workflow go on and end SubFinished
        "resources": _resources(a),
    }
    retries = a.get("num_retries")
    if isinstance(retries, int) and 0 <= retries <= 100:
        out["retries"] = retries
    return out


def _stagein(work: Mapping[str, Any], name: str, manager: str) -> dict[str, Any]:
    """An ATLASStageinWork: its primary input collection, staged by the rucio manager."""
    a = work["attributes"]
    what = f"work {name}"
    collections = a.get("_collections")
    primary = a.get("_primary_input_collection")
    if not isinstance(collections, dict) or primary not in collections:
        raise IddsError(f"{what}: a stage-in work names its dataset as its primary input")
    coll = attrs(collections[primary], f"{what}.collections.{primary}")
    scope, dataset = coll.get("scope"), coll.get("name")
    if not isinstance(scope, str) or not isinstance(dataset, str) or not scope or not dataset:
        raise IddsError(f"{what}: its primary input collection needs a scope and a name")
    return {
        "name": name,
        "description": "ATLASStageinWork"
        + (f" from {a['src_rse']}" if isinstance(a.get("src_rse"), str) else "")
        + (f" to {a['dest_rse']}" if isinstance(a.get("dest_rse"), str) else ""),
        "noop": True,
        "input": {"manager": manager, "collections": [f"{scope}:{dataset}"]},
    }


def _command(work: Mapping[str, Any], name: str) -> dict[str, Any]:
    a = work["attributes"]
    out: dict[str, Any] = {
        "name": name,
        "description": f"iDDS {work['class']}",
        "command": _command_of(a, f"work {name}"),
    }
    params = a.get("parameters")
    if isinstance(params, dict) and params:
        out["parameters"] = params
    return out


def _conditions(
    base: Mapping[str, Any], names: Mapping[str, str], works: Mapping[str, dict[str, Any]]
) -> None:
    """Conditions between works as ``after`` and ``trigger`` of the works they start."""
    conds = base.get("_conditions") or {}
    if not isinstance(conds, dict):
        raise IddsError("workflow._conditions: expected a mapping")
    for cid, cond in conds.items():
        what = f"workflow.conditions.{cid}"
        a = attrs(cond, what)
        operator = enum_value(a.get("operator"))
        methods = _tests(a, names, TRIGGERS, what)
        if len({m for m, _ in methods}) > 1:
            raise IddsError(f"{what}: conditions mixing several tests are not supported yet")
        method = methods[0][0]
        sources = [w for _, w in methods]
        for branch, key in ((0, "_true_works"), (1, "_false_works")):
            targets = listed(a.get(key), f"{what}.{key}")
            if len(sources) == 1:
                trigger = TRIGGERS[method][branch]
            else:
                trigger = SEVERAL[(method, "or" if operator == 1 else "and")][branch]
            for target in targets or []:
                if target not in names:
                    raise IddsError(f"{what}: it starts a work ({target}) not in this workflow")
                if trigger is None:
                    raise IddsError(
                        f"{what}: the {'false' if branch else 'true'} branch of {method} over "
                        f"{len(sources)} work(s) cannot be expressed in Orchid yet"
                    )
                spec = works[names[target]]
                if spec.get("after"):
                    raise IddsError(f"{what}: work {spec['name']} is started by two conditions")
                spec["after"] = sources
                spec["trigger"] = trigger
                if branch or trigger != "all_success":
                    # a branch taken when a work failed: its failure must not end the workflow
                    for source in sources:
                        _go_on(works[source])
