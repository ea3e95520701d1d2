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
from orchid.core.idds._workflow import translate_workflow


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
        return translate_workflow(metadata["workflow"], body)
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
        params = spec.get("params")
        options: dict[str, Any] = params if isinstance(params, dict) else {}
        if dimension == "Choice":
            choices = options.get("choices")
            if isinstance(choices, list) and choices:
                return {"type": "categorical", "choices": choices}
        if dimension == "Scalar":
            bounds = spec.get("bounds")
            if (
                isinstance(bounds, list)
                and len(bounds) == 2
                and all(isinstance(b, int | float) for b in bounds)
            ):
                integer = bool(options.get("integer"))
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
    if not isinstance(max_points, int) or isinstance(max_points, bool):
        raise IddsError(f"request_metadata.max_points must be a whole number; got {max_points!r}")
    per_generation = meta.get("num_points_per_generation") or min(max_points, 10)
    if not isinstance(per_generation, int) or isinstance(per_generation, bool):
        raise IddsError(
            "request_metadata.num_points_per_generation must be a whole number; "
            f"got {per_generation!r}"
        )
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
