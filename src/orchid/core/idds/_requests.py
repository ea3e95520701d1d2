"""What an iDDS ``add_request`` body asks for, as an Orchid template: a workflow, an HPO
request or a stage-in request. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchid.core.idds._data import (
    HPO_REQUEST,
    REQUEST_TYPES,
    STAGEIN_REQUEST,
    WORKFLOW_REQUEST,
    IddsError,
    check_classes,
    describe,
    enum_value,
    work_name,
)
from orchid.core.idds._hpo import hpo_block
from orchid.core.idds._workflow import translate_added_work, translate_workflow


def translate_request(body: Mapping[str, Any], *, rucio_manager: str = "rucio") -> dict[str, Any]:
    """The Orchid template of an iDDS ``add_request`` body (what ``ClientManager.submit``,
    ``Client.add_request`` for HPO and stage-in requests send). Raises IddsError."""
    check_classes(body)
    kind = enum_value(body.get("request_type", WORKFLOW_REQUEST))
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


def translate_transform(
    body: Mapping[str, Any], template: Mapping[str, Any], *, rucio_manager: str = "rucio"
) -> dict[str, Any]:
    """The Orchid work of an iDDS ``add_transform`` body (what ``ClientManager.submit_work``
    sends: the work in ``transform_metadata.work``) for a request whose translated template
    is ``template``. Raises IddsError."""
    check_classes(body, "transform")
    metadata = body.get("transform_metadata")
    if not isinstance(metadata, dict) or "work" not in metadata:
        raise IddsError(
            "transform_metadata.work is missing: nothing to add (ClientManager.submit_work "
            "sends the work there)"
        )
    return translate_added_work(metadata["work"], template, rucio_manager)


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
        return translate_workflow(metadata["workflow"], body, rucio_manager)
    if kind == HPO_REQUEST:
        return _hpo(metadata, body)
    if kind == STAGEIN_REQUEST:
        return _stagein(metadata, body, rucio_manager)
    name = REQUEST_TYPES.get(kind, str(kind)) if isinstance(kind, int) else str(kind)
    raise IddsError(
        f"request_type {name} is not supported by Orchid; it takes Workflow, "
        "HyperParameterOpt and StageIn requests (docs/from-idds.md)"
    )


# --- HPO and stage-in requests (no Workflow object: their metadata describes them) -------


def _hpo(meta: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    hpo = hpo_block(meta, "request_metadata")
    wid = meta.get("workload_id") or body.get("workload_id")
    return {
        "name": work_name(f"hpo-{wid}" if wid else "hpo"),
        "description": f"{describe(body)}: hyperparameter optimisation, translated from iDDS",
        "works": [{"name": "hpo", "hpo": hpo}],
    }


def _stagein(meta: Mapping[str, Any], body: Mapping[str, Any], manager: str) -> dict[str, Any]:
    scope, name = body.get("scope"), body.get("name")
    if not isinstance(scope, str) or not isinstance(name, str) or not scope or not name:
        raise IddsError("a StageIn request names its dataset with scope and name")
    return {
        "name": work_name(f"stagein-{name}"),
        "description": f"{describe(body)}: stage-in"
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
