"""Calibration with a quality figure: more samples give a better (higher) quality."""

from __future__ import annotations

import math
import random
from typing import Any


def calibrate(samples: int) -> dict[str, float]:
    rng = random.Random(samples)
    gain = sum(rng.gauss(1.0, 0.05) for _ in range(samples)) / samples
    quality = 1.0 - 1.0 / math.sqrt(samples)
    return {"gain": round(gain, 5), "quality": round(quality, 5), "samples": samples}


def publish(constants: dict[str, Any]) -> dict[str, Any]:
    return {"published": True, "gain": constants["gain"]}


def report(published: bool, quality: float) -> dict[str, Any]:
    return {"published": published, "quality": quality}
