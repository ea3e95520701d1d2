"""iDDS requests as data: what an iDDS 2.6 client submits, read into an Orchid template.

The iDDS client serialises its ``Workflow`` and ``Work`` objects as JSON that names their
Python classes (``{"class": ..., "module": ..., "attributes": {...}}``, iDDS's ``DictClass``
encoding) and the iDDS server imports those classes by name. Orchid never does: the JSON
is read here as plain data, every class it names must be on :data:`ALLOWED`, and anything
else is refused with a :class:`IddsError` that names the class. The result is an ordinary
template dict, validated afterwards like any other (``engine.submit``).

The concept map (docs/from-idds.md): a request is a workflow, a transform a work, a
``DomaPanDAWork``'s dependency map the work's listed jobs with their parents (a job-level
DAG across works), a ``Condition`` between works ``after`` with a ``trigger``, an HPO
request an ``hpo`` work in pull mode, a stage-in request a work fed by a data manager.
Pure: no I/O; ``zlib`` and ``base64`` only to read what the client packed into text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import shlex
import zlib
from collections.abc import Mapping
from typing import Any

from orchid.errors import InvalidInput

__all__ = [
    "ALLOWED",
    "IddsError",
    "check_classes",
    "job_name",
    "translate_request",
    "work_name",
]


class IddsError(InvalidInput):
    """An iDDS request Orchid cannot take; the message says what and, where it can, why."""


# The classes Orchid reads (module, class). Reading means looking at the attributes as
# data; none of these is ever imported. Enums are recognised by their module alone.
WORKFLOW = ("idds.workflowv2.workflow", "Workflow")
WORKFLOW_BASE = ("idds.workflowv2.workflow", "WorkflowBase")
DOMA_WORK = ("idds.doma.workflowv2.domapandawork", "DomaPanDAWork")
GENERIC_WORKS = frozenset(
    {("idds.workflowv2.work", "Work"), ("idds.workflowv2.processingwork", "ProcessingWork")}
)
CONDITIONS = frozenset(
    {
        ("idds.workflowv2.workflow", "Condition"),
        ("idds.workflowv2.workflow", "AndCondition"),
        ("idds.workflowv2.workflow", "OrCondition"),
        ("idds.doma.workflowv2.domapandawork", "DomaCondition"),
    }
)
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        WORKFLOW,
        WORKFLOW_BASE,
        DOMA_WORK,
        *GENERIC_WORKS,
        *CONDITIONS,
        ("idds.workflowv2.workflow", "ConditionOperator"),
        ("idds.workflowv2.workflow", "ConditionTrigger"),
        ("idds.workflowv2.workflow", "ParameterLink"),
        ("idds.workflowv2.work", "Collection"),
        ("idds.workflowv2.work", "Processing"),
        ("idds.common.dict_class", "DictMetadata"),
        ("idds.workflowv2.base", "IDDSMetadata"),
    }
)
ENUM_MODULE = "idds.common.constants"
ENUM_NAME = re.compile(r"^[A-Z][A-Za-z]{0,63}$")
# kinds of works Orchid knows by name but cannot take (yet): a clear word instead of a guess
NOT_YET: Mapping[tuple[str, str], str] = {
    ("idds.workflowv2.workflow", "SubWorkflow"): "a workflow nested as a work of another",
    ("idds.workflowv2.workflow", "LoopWorkflow"): "a loop workflow nested as a work",
    ("idds.doma.workflowv2.domapandaeswork", "DomaPanDAESWork"): "event service works",
    ("idds.doma.workflowv2.domaruciowork", "DomaRucioWork"): "DOMA Rucio works",
    ("idds.doma.workflowv2.domadatawork", "DomaDataWork"): "DOMA data works",
    ("idds.workflowv2.datawork", "DataWork"): "data works",
}

# request types (idds.common.constants.RequestType)
WORKFLOW_REQUEST, STAGEIN_REQUEST, HPO_REQUEST = 0, 2, 4
REQUEST_TYPES = {
    0: "Workflow",
    1: "EventStreaming",
    2: "StageIn",
    3: "ActiveLearning",
    4: "HyperParameterOpt",
    5: "Derivation",
    6: "iWorkflow",
    7: "iWorkflowLocal",
    8: "GenericWorkflow",
    9: "WorkData",
    99: "Other",
}
# Orchid's statuses as iDDS's (RequestStatus, TransformStatus): (name, value)
REQUEST_STATUS: Mapping[str, tuple[str, int]] = {
    "pending": ("New", 0),
    "running": ("Transforming", 2),
    "suspended": ("Suspended", 12),
    "succeeded": ("Finished", 3),
    "partial": ("SubFinished", 4),
    "failed": ("Failed", 5),
    "cancelled": ("Cancelled", 9),
}
TRANSFORM_STATUS: Mapping[str, tuple[str, int]] = {
    "waiting": ("New", 0),
    "ready": ("Ready", 1),
    "running": ("Transforming", 2),
    "succeeded": ("Finished", 3),
    "partial": ("SubFinished", 4),
    "failed": ("Failed", 5),
    "cancelled": ("Cancelled", 9),
    "skipped": ("Cancelled", 9),  # iDDS has no skipped transform
}
# a job's status as its iDDS content's (ContentStatus)
CONTENT_STATUS: Mapping[str, tuple[str, int]] = {
    "waiting": ("New", 0),
    "ready": ("New", 0),
    "submitted": ("Processing", 1),
    "running": ("Processing", 1),
    "succeeded": ("Available", 2),
    "failed": ("FinalFailed", 4),
    "cancelled": ("Cancelled", 10),
    "skipped": ("Missing", 9),
}
# how a Condition's method on a work becomes Orchid's trigger on that work (true branch,
# false branch); None: the branch cannot be said with a trigger
TRIGGERS: Mapping[str, tuple[str | None, str | None]] = {
    "is_finished": ("all_success", "one_failed"),
    "is_terminated": ("all_done", None),
    "is_failed": ("one_failed", "all_success"),
}
MAX_UNZIPPED = 256 * 1024 * 1024  # bytes one packed attribute may inflate to
MAX_JOBS = 2_000_000
IN_PLACEHOLDER = "${IN/L}"  # where a DOMA job's pseudo input name goes in its command


# --- reading the DictClass encoding as data ---------------------------------------------


def _is_object(node: Any) -> bool:
    return isinstance(node, dict) and {"class", "module", "attributes"} <= node.keys()


def _kind(node: Mapping[str, Any]) -> tuple[str, str]:
    return (str(node["module"]), str(node["class"]))


def _dotted(kind: tuple[str, str]) -> str:
    return f"{kind[0]}.{kind[1]}"


def check_classes(value: Any, where: str = "request") -> None:
    """Refuse any class ``value`` names that is not on :data:`ALLOWED` (or an iDDS enum).

    The whole value is walked before anything is read from it, so a description naming
    ``os.system`` or ``subprocess.Popen`` anywhere is refused whole, with where it is."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            if "class" in node or "module" in node:
                if not _is_object(node):
                    raise IddsError(f"{path}: names a class without module/class/attributes")
                kind = _kind(node)
                if not isinstance(node["module"], str) or not isinstance(node["class"], str):
                    raise IddsError(f"{path}: a class and a module are text")
                enum = kind[0] == ENUM_MODULE and ENUM_NAME.match(kind[1])
                if kind not in ALLOWED and not enum:
                    why = NOT_YET.get(kind)
                    raise IddsError(
                        f"{path}: class {_dotted(kind)} is not supported by Orchid"
                        + (f" ({why} cannot be translated yet)" if why else "")
                        + "; Orchid reads iDDS descriptions as data and knows these classes: "
                        + ", ".join(sorted(k[1] for k in ALLOWED))
                        + " (docs/from-idds.md)"
                    )
                attributes = node["attributes"]
                if not isinstance(attributes, dict):
                    raise IddsError(f"{path}: the attributes of {kind[1]} are not a mapping")
                stack.extend((v, f"{path}.{kind[1]}.{k}") for k, v in attributes.items())
            else:
                stack.extend((v, f"{path}.{k}") for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node))


def _attrs(node: Any, what: str) -> dict[str, Any]:
    if not _is_object(node):
        raise IddsError(f"{what}: expected an iDDS object ({{class, module, attributes}})")
    attributes: dict[str, Any] = node["attributes"]
    return attributes


def _unzip(value: Any, what: str) -> Any:
    """An attribute the client packed (``idds_zip:`` + base64 of zlib of JSON), unpacked."""
    if not isinstance(value, str) or not value.startswith("idds_zip:"):
        return value
    try:
        packed = base64.b64decode(value[len("idds_zip:") :], validate=True)
        inflater = zlib.decompressobj()
        text = inflater.decompress(packed, MAX_UNZIPPED + 1)
    except (binascii.Error, zlib.error) as exc:
        raise IddsError(f"{what}: the packed (idds_zip) value does not unpack: {exc}") from None
    if len(text) > MAX_UNZIPPED or inflater.unconsumed_tail:
        raise IddsError(f"{what}: unpacks to more than {MAX_UNZIPPED:,} bytes")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise IddsError(f"{what}: the packed value is not JSON: {exc}") from None


def _enum_value(value: Any) -> Any:
    """An iDDS enum's number (they travel as objects or as plain numbers)."""
    if _is_object(value):
        return value["attributes"].get("_value_")
    return value


# --- names --------------------------------------------------------------------------------


def _fit(text: str, allowed: str, first: str, limit: int) -> str:
    out = re.sub(f"[^{allowed}]", "_", text)
    if not out or not re.match(f"[{first}]", out[0]):
        out = "_" + out
    if out != text or len(out) > limit:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        out = f"{out[: limit - 9]}-{digest}"
    return out


def work_name(text: str) -> str:
    """An iDDS task name as an Orchid work name (unchanged when it already is one)."""
    return _fit(str(text), r"A-Za-z0-9_\-", "A-Za-z_", 100)


def job_name(text: str) -> str:
    """A DOMA job's pseudo input name as an Orchid job name (unchanged when it is one)."""
    return _fit(str(text), r"A-Za-z0-9_.:+\-", "A-Za-z0-9_", 200)


# --- requests -----------------------------------------------------------------------------


def translate_request(body: Mapping[str, Any], *, rucio_manager: str = "rucio") -> dict[str, Any]:
    """The Orchid template of an iDDS ``add_request`` body (what ``ClientManager.submit``,
    ``Client.add_request`` for HPO and stage-in requests send). Raises IddsError."""
    check_classes(body)
    kind = _enum_value(body.get("request_type", WORKFLOW_REQUEST))
    metadata = body.get("request_metadata") or {}
    if not isinstance(metadata, dict):
        raise IddsError("request_metadata: expected a mapping")
    template = _translate(kind, metadata, body, rucio_manager)
    # what iDDS calls show of the request, kept as a workflow parameter
    workload_id = body.get("workload_id") or metadata.get("workload_id")
    template["parameters"] = {
        "idds": {
            "request_type": kind if isinstance(kind, int) else WORKFLOW_REQUEST,
            "scope": _text(body.get("scope")),
            "name": _text(body.get("name")),
            "workload_id": _text(workload_id),
        }
    }
    return template


def _text(value: Any) -> str | None:
    return str(value)[:1000] if isinstance(value, str | int) and value != "" else None


def _translate(
    kind: Any, metadata: dict[str, Any], body: Mapping[str, Any], rucio_manager: str
) -> dict[str, Any]:
    if kind == WORKFLOW_REQUEST:
        if "build_workflow" in metadata:
            raise IddsError(
                "build requests (submit_build, PanDA's sandbox build step) are not supported "
                "by Orchid: submit the workflow itself with ClientManager.submit"
            )
        if "workflow" not in metadata:
            raise IddsError("request_metadata.workflow is missing: nothing to run")
        return _workflow(metadata["workflow"], body)
    if kind == HPO_REQUEST:
        return _hpo(metadata, body)
    if kind == STAGEIN_REQUEST:
        return _stagein(metadata, body, rucio_manager)
    name = REQUEST_TYPES.get(kind, str(kind)) if isinstance(kind, int) else str(kind)
    raise IddsError(
        f"request_type {name} is not supported by Orchid; it takes Workflow, "
        "HyperParameterOpt and StageIn requests (docs/from-idds.md)"
    )


def _description(body: Mapping[str, Any]) -> str:
    scope, name = body.get("scope"), body.get("name")
    return f"iDDS request {scope}:{name}" if scope or name else "iDDS request"


def _workflow(node: Any, body: Mapping[str, Any]) -> dict[str, Any]:
    if not _is_object(node) or _kind(node) != WORKFLOW:
        got = _dotted(_kind(node)) if _is_object(node) else type(node).__name__
        raise IddsError(f"request_metadata.workflow: expected a Workflow, got {got}")
    top = _attrs(node, "workflow")
    base = _attrs(top.get("template"), "workflow.template")
    if top.get("_loop_condition"):
        raise IddsError("workflow: a loop condition outside the workflow's template")
    for key in ("parameter_links", "parameter_links_source", "parameter_links_destination"):
        if base.get(key):
            raise IddsError(
                f"workflow.{key}: parameter links between works are not supported by the "
                "translation yet (docs/from-idds.md)"
            )
    works_in = base.get("_works") or {}
    if not isinstance(works_in, dict) or not works_in:
        raise IddsError("workflow: it has no works")
    # first the names, so that dependency maps can name the tasks they depend on
    names: dict[str, str] = {}  # internal id -> Orchid work name
    by_task: dict[str, str] = {}  # iDDS task name -> Orchid work name
    for internal_id, work in works_in.items():
        if not _is_object(work):
            raise IddsError(f"workflow.works.{internal_id}: expected an iDDS work")
        kind = _kind(work)
        if kind == WORKFLOW:
            raise IddsError(
                f"workflow.works.{internal_id}: a Workflow nested as a work of another is "
                "not supported by Orchid yet (docs/from-idds.md)"
            )
        if kind != DOMA_WORK and kind not in GENERIC_WORKS:
            raise IddsError(
                f"workflow.works.{internal_id}: class {_dotted(kind)} is not a work Orchid runs"
            )
        a = work["attributes"]
        meta = (
            _attrs(a.get("_metadata"), f"works.{internal_id}._metadata")
            if a.get("_metadata")
            else {}
        )
        task = a.get("task_name") or meta.get("work_name") or f"work_{internal_id}"
        name = work_name(task)
        if name in names.values():
            name = work_name(f"{task}_{internal_id}")
        names[internal_id] = name
        by_task[str(task)] = name
        if a.get("orig_task_name"):
            by_task.setdefault(str(a["orig_task_name"]), name)
    works = [
        _doma(works_in[i], names[i], by_task)
        if _kind(works_in[i]) == DOMA_WORK
        else _command(works_in[i], names[i])
        for i in works_in
    ]
    _conditions(base, names, {w["name"]: w for w in works})
    wf_name = base.get("_name") or top.get("_name") or body.get("name") or "idds-request"
    out: dict[str, Any] = {
        "name": work_name(wf_name),
        "description": f"{_description(body)}, translated from iDDS",
        "works": works,
    }
    if base.get("_loop_condition"):
        loop = _loop(base, names, [w["name"] for w in works])
        out["loops"] = [loop]
        for w in works:  # the iteration that ends the loop may be one that failed
            if f"works['{w['name']}']" in loop["until"]:
                w["on_failure"] = "continue"
    return out


# an iDDS condition method as an Orchid expression over the work's status
STATUS_TESTS: Mapping[str, str] = {
    "is_finished": "works['{w}'].status == 'succeeded'",
    "is_failed": "works['{w}'].status == 'failed'",
    "is_terminated": "works['{w}'].status in ['succeeded', 'failed', 'partial', 'cancelled', "
    "'skipped']",
}
MAX_LOOP_ITERATIONS = 1000  # iDDS bounds no loop; an Orchid loop must be


def _loop(base: Mapping[str, Any], names: Mapping[str, str], works: list[str]) -> dict[str, Any]:
    """A workflow with a loop condition (checked at its end) repeats all its works while
    the condition holds: an Orchid loop over every work, until it no longer does."""
    what = "workflow.loop_condition"
    if base.get("_loop_condition_position", "end") != "end":
        raise IddsError(f"{what}: only loop conditions checked at the end are supported")
    a = _attrs(base["_loop_condition"], what)
    tests = []
    for item in a.get("_conditions") or []:
        if not isinstance(item, dict) or "idds_method" not in item:
            raise IddsError(f"{what}: nested conditions are not supported by Orchid yet")
        src = str(item.get("idds_method_internal_id", item.get("idds_method_class_id")))
        if src not in names:
            raise IddsError(f"{what}: it names a work ({src}) this workflow does not hold")
        if item["idds_method"] not in STATUS_TESTS:
            raise IddsError(
                f"{what}: the condition {item['idds_method']} is not supported; Orchid "
                f"takes {', '.join(sorted(STATUS_TESTS))}"
            )
        tests.append(STATUS_TESTS[item["idds_method"]].format(w=names[src]))
    if not tests:
        raise IddsError(f"{what}: it tests nothing")
    joined = (" or " if _enum_value(a.get("operator")) == 1 else " and ").join(tests)
    return {
        "name": "idds_loop",
        "works": works,
        "until": f"not ({joined})",
        "max_iterations": MAX_LOOP_ITERATIONS,
    }


def _command_of(a: Mapping[str, Any], what: str) -> list[str]:
    text = " ".join(str(x) for x in (a.get("executable"), a.get("arguments")) if x)
    if not text.strip():
        raise IddsError(f"{what}: it has no executable")
    # literal braces stay literal; the DOMA placeholder becomes the job argument `input`
    text = text.replace("{", "{{").replace("}", "}}").replace("${{IN/L}}", "{input}")
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
    dep_map = _unzip(a.get("_dependency_map", a.get("dependency_map")), f"{what}.dependency_map")
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
        for d, dep in enumerate(entry.get("dependencies") or []):
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
        a = _attrs(cond, what)
        operator = _enum_value(a.get("operator"))
        methods = []
        for item in a.get("_conditions") or []:
            if not isinstance(item, dict) or "idds_method" not in item:
                raise IddsError(f"{what}: nested conditions are not supported by Orchid yet")
            src = str(item.get("idds_method_internal_id", item.get("idds_method_class_id")))
            if src not in names:
                raise IddsError(f"{what}: it names a work ({src}) this workflow does not hold")
            if item["idds_method"] not in TRIGGERS:
                raise IddsError(
                    f"{what}: the condition {item['idds_method']} is not supported; Orchid "
                    f"takes {', '.join(sorted(TRIGGERS))}"
                )
            methods.append((item["idds_method"], names[src]))
        if not methods:
            raise IddsError(f"{what}: it tests nothing")
        if len({m for m, _ in methods}) > 1:
            raise IddsError(f"{what}: conditions mixing several tests are not supported yet")
        method = methods[0][0]
        sources = [w for _, w in methods]
        for branch, targets in ((0, a.get("_true_works")), (1, a.get("_false_works"))):
            trigger = TRIGGERS[method][branch]
            if len(sources) > 1 and operator == 1:  # Or
                trigger = {"all_success": "one_success", "one_failed": "one_failed"}.get(
                    trigger or ""
                )
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
                        works[source]["on_failure"] = "continue"


# --- HPO and stage-in requests (no Workflow object: their metadata describes them) -------

HPO_METHODS = {"bayesian": "tpe", "nevergrad": "nevergrad", "random": "random", "grid": "grid"}


def _hpo_param(name: str, spec: Any) -> dict[str, Any]:
    what = f"request_metadata.opt_space.{name}"
    if (
        isinstance(spec, list | tuple)
        and len(spec) == 2
        and all(isinstance(x, int | float) for x in spec)
    ):
        low, high = spec
        kind = "int" if all(isinstance(x, int) for x in spec) else "float"
        return {"type": kind, "low": low, "high": high}
    if isinstance(spec, list) and spec:
        return {"type": "categorical", "choices": spec}
    if isinstance(spec, dict):
        dimension = spec.get("type")
        if dimension == "Choice":
            choices = (spec.get("params") or {}).get("choices")
            if isinstance(choices, list) and choices:
                return {"type": "categorical", "choices": choices}
        if dimension == "Scalar":
            bounds = spec.get("bounds")
            if isinstance(bounds, list) and len(bounds) == 2:
                integer = bool((spec.get("params") or {}).get("integer"))
                return {
                    "type": "int" if integer else "float",
                    "low": int(bounds[0]) if integer else bounds[0],
                    "high": int(bounds[1]) if integer else bounds[1],
                }
    raise IddsError(
        f"{what}: not a search dimension Orchid reads: use [low, high], a list of choices, "
        '{"type": "Choice", "params": {"choices": [...]}} or {"type": "Scalar", "bounds": [l, h]}'
    )


def _hpo(meta: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    space = meta.get("opt_space")
    if not isinstance(space, dict) or not space:
        raise IddsError("request_metadata.opt_space: an HPO request needs its search space")
    method = meta.get("method") or "bayesian"
    if method not in HPO_METHODS:
        raise IddsError(
            f"request_metadata.method {method!r} is not supported; Orchid takes "
            + ", ".join(sorted(HPO_METHODS))
        )
    if meta.get("executable") or meta.get("sandbox"):
        raise IddsError(
            "request_metadata.executable/sandbox: HPO requests whose points the server "
            "evaluates itself are not supported; fetch points with get_hyperparameters and "
            "report losses with update_hyperparameter (pull mode)"
        )
    max_points = meta.get("max_points") or 20
    per_generation = meta.get("num_points_per_generation") or min(max_points, 10)
    if not isinstance(max_points, int) or not isinstance(per_generation, int):
        raise IddsError("request_metadata.max_points and num_points_per_generation are numbers")
    hpo = {
        "space": {str(k): _hpo_param(str(k), v) for k, v in space.items()},
        "max_trials": max_points,
        "parallel": max(1, min(per_generation, max_points)),
        "strategy": HPO_METHODS[method],
        "mode": "pull",
        "objective": "loss",
        "direction": "minimize",
    }
    wid = meta.get("workload_id") or body.get("workload_id")
    return {
        "name": work_name(f"hpo-{wid}" if wid else "hpo"),
        "description": f"{_description(body)}: hyperparameter optimisation, translated from iDDS",
        "works": [{"name": "hpo", "hpo": hpo}],
    }


def _stagein(meta: Mapping[str, Any], body: Mapping[str, Any], manager: str) -> dict[str, Any]:
    scope, name = body.get("scope"), body.get("name")
    if not isinstance(scope, str) or not isinstance(name, str) or not scope or not name:
        raise IddsError("a StageIn request names its dataset with scope and name")
    return {
        "name": work_name(f"stagein-{name}"),
        "description": f"{_description(body)}: stage-in"
        + (f" from {meta['src_rse']}" if meta.get("src_rse") else "")
        + (f" to {meta['dest_rse']}" if meta.get("dest_rse") else ""),
        "works": [
            {
                "name": "stagein",
                "noop": True,
                "input": {"manager": manager, "collections": [f"{scope}:{name}"]},
            }
        ],
    }
