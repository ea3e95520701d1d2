"""The steps of examples/nested: a calibration (measure, fit, check) per detector."""

from __future__ import annotations

from typing import Any


def prepare(samples: int) -> dict[str, Any]:
    return {"seed": 7, "samples": samples}


def measure(detector: str, scale: float, seed: int) -> dict[str, Any]:
    return {"detector": detector, "values": [scale * ((seed * (i + 1)) % 11) for i in range(5)]}


def fit(values: list[float]) -> dict[str, float]:
    return {"mean": sum(values) / len(values), "width": max(values) - min(values)}


def check(detector: str, mean: float) -> dict[str, Any]:
    return {"detector": detector, "ok": mean > 0}


def summary(tracker: str, calorimeter: str) -> dict[str, str]:
    return {"tracker": tracker, "calorimeter": calorimeter}
