"""Reading the iDDS client's ``DictClass`` JSON as data: the allow-list of classes, packed
values, enums, names that fit Orchid's, and iDDS's status names. Pure."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zlib
from collections.abc import Mapping
from typing import Any

from orchid.errors import InvalidInput


class IddsError(InvalidInput):
    """An iDDS request Orchid cannot take; the message says what and, where it can, why."""


# The classes Orchid reads (module, class). Reading means looking at the attributes as
# data; none of these is ever imported. Enums are recognised by their module alone.
WORKFLOW = ("idds.workflowv2.workflow", "Workflow")
SUB_WORKFLOW = ("idds.workflowv2.workflow", "SubWorkflow")
LOOP_WORKFLOW = ("idds.workflowv2.workflow", "LoopWorkflow")  # a Workflow, by another name
WORKFLOW_BASE = ("idds.workflowv2.workflow", "WorkflowBase")
DOMA_WORK = ("idds.doma.workflowv2.domapandawork", "DomaPanDAWork")
STAGEIN_WORK = ("idds.atlas.workflowv2.atlasstageinwork", "ATLASStageinWork")
HPO_WORK = ("idds.atlas.workflowv2.atlashpowork", "ATLASHPOWork")
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
        SUB_WORKFLOW,
        LOOP_WORKFLOW,
        WORKFLOW_BASE,
        DOMA_WORK,
        STAGEIN_WORK,
        HPO_WORK,
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
# The members of iDDS's enums (idds.common.constants) that Orchid's answers use, with their
# numbers: the client decodes an enum by class and number (tests/idds checks this table
# against the real package)
ENUMS: Mapping[str, Mapping[str, int]] = {
    "RequestType": {name: value for value, name in REQUEST_TYPES.items()},
    "RequestStatus": {
        "New": 0,
        "Transforming": 2,
        "Finished": 3,
        "SubFinished": 4,
        "Failed": 5,
        "Cancelled": 9,
        "Suspended": 12,
    },
    "RequestLocking": {"Idle": 0},
    "TransformType": {"Processing": 6},
    "TransformStatus": {
        "New": 0,
        "Ready": 1,
        "Transforming": 2,
        "Finished": 3,
        "SubFinished": 4,
        "Failed": 5,
        "Cancelled": 9,
    },
    "CollectionType": {"PseudoDataset": 3},
    "CollectionRelationType": {"Input": 0, "Output": 1},
    "CollectionStatus": {"Open": 3, "Closed": 4},
    "ContentType": {"PseudoContent": 2},
    "ContentRelationType": {"Output": 1},
    "ContentStatus": {
        "New": 0,
        "Processing": 1,
        "Available": 2,
        "FinalFailed": 4,
        "Missing": 9,
        "Cancelled": 10,
    },
}
# Orchid's statuses as iDDS's
REQUEST_STATUS: Mapping[str, str] = {
    "pending": "New",
    "running": "Transforming",
    "suspended": "Suspended",
    "succeeded": "Finished",
    "partial": "SubFinished",
    "failed": "Failed",
    "cancelled": "Cancelled",
}
TRANSFORM_STATUS: Mapping[str, str] = {
    "waiting": "New",
    "ready": "Ready",
    "running": "Transforming",
    "succeeded": "Finished",
    "partial": "SubFinished",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "skipped": "Cancelled",  # iDDS has no skipped transform
}
# a job's status as its iDDS content's
CONTENT_STATUS: Mapping[str, str] = {
    "waiting": "New",
    "ready": "New",
    "submitted": "Processing",
    "running": "Processing",
    "succeeded": "Available",
    "failed": "FinalFailed",
    "cancelled": "Cancelled",
    "skipped": "Missing",
}
MAX_UNZIPPED = 256 * 1024 * 1024  # bytes one packed attribute may inflate to


# --- reading the DictClass encoding as data ---------------------------------------------


def is_object(node: Any) -> bool:
    return isinstance(node, dict) and {"class", "module", "attributes"} <= node.keys()


def kind_of(node: Mapping[str, Any]) -> tuple[str, str]:
    return (str(node["module"]), str(node["class"]))


def dotted(kind: tuple[str, str]) -> str:
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
                if not is_object(node):
                    raise IddsError(f"{path}: names a class without module/class/attributes")
                kind = kind_of(node)
                if not isinstance(node["module"], str) or not isinstance(node["class"], str):
                    raise IddsError(f"{path}: a class and a module are text")
                enum = kind[0] == ENUM_MODULE and ENUM_NAME.match(kind[1])
                if kind not in ALLOWED and not enum:
                    why = NOT_YET.get(kind)
                    raise IddsError(
                        f"{path}: class {dotted(kind)} is not supported by Orchid"
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


def attrs(node: Any, what: str) -> dict[str, Any]:
    if not is_object(node):
        raise IddsError(f"{what}: expected an iDDS object ({{class, module, attributes}})")
    attributes: dict[str, Any] = node["attributes"]
    return attributes


def unzip(value: Any, what: str) -> Any:
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


def listed(value: Any, what: str) -> list[Any]:
    """A list attribute (None: empty), or an IddsError naming where it is not one."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise IddsError(f"{what}: expected a list, got {type(value).__name__}")
    return value


def enum_value(value: Any) -> Any:
    """An iDDS enum's number (they travel as objects or as plain numbers)."""
    if is_object(value):
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


def describe(body: Mapping[str, Any]) -> str:
    scope, name = body.get("scope"), body.get("name")
    return f"iDDS request {scope}:{name}" if scope or name else "iDDS request"
