"""An iDDS hyperparameter search (an HPO request's metadata, or an ``ATLASHPOWork``) as an
Orchid ``hpo`` block in pull mode: workers fetch points with ``get_hyperparameters`` and
report losses with ``update_hyperparameter``. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchid.core.idds._data import IddsError

HPO_METHODS = {"bayesian": "tpe", "nevergrad": "nevergrad", "random": "random", "grid": "grid"}


def _dimension(what: str, spec: Any) -> dict[str, Any]:
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


def _whole(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise IddsError(f"{what} must be a whole number; got {value!r}")
    return value


def hpo_block(meta: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The ``hpo`` block of a search described by ``meta`` (method, opt_space, max_points,
    num_points_per_generation or _per_iteration); ``where`` names it in messages."""
    space = meta.get("opt_space")
    if not isinstance(space, dict) or not space:
        raise IddsError(f"{where}.opt_space: an HPO request needs its search space")
    method = meta.get("method") or "bayesian"
    if method not in HPO_METHODS:
        raise IddsError(
            f"{where}.method {method!r} is not supported; Orchid takes "
            + ", ".join(sorted(HPO_METHODS))
        )
    if meta.get("executable") or meta.get("sandbox"):
        raise IddsError(
            f"{where}.executable/sandbox: HPO requests whose points the server evaluates "
            "itself are not supported; fetch points with get_hyperparameters and report "
            "losses with update_hyperparameter (pull mode)"
        )
    max_points = _whole(meta.get("max_points") or 20, f"{where}.max_points")
    batch = meta.get("num_points_per_generation") or meta.get("num_points_per_iteration")
    per_generation = _whole(batch or min(max_points, 10), f"{where}.num_points_per_generation")
    return {
        "space": {str(k): _dimension(f"{where}.opt_space.{k}", v) for k, v in space.items()},
        "max_trials": max_points,
        "parallel": max(1, min(per_generation, max_points)),
        "strategy": HPO_METHODS[method],
        "mode": "pull",
        "objective": "loss",
        "direction": "minimize",
    }
