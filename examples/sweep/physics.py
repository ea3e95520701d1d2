"""A toy calorimeter: energy resolution from simulated showers (deterministic per seed)."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any


def simulate(seed: int, energy: float, events: int) -> dict[str, float]:
    """Relative resolution sigma/E of `events` showers: stochastic and constant terms."""
    rng = random.Random(seed * 100_003 + int(energy * 10))
    stochastic, constant = 0.10, 0.02
    sigma = energy * math.hypot(stochastic / math.sqrt(energy), constant)
    sample = [rng.gauss(energy, sigma) for _ in range(events)]
    mean = sum(sample) / events
    spread = math.sqrt(sum((x - mean) ** 2 for x in sample) / (events - 1))
    return {"seed": seed, "energy": energy, "resolution": spread / mean}


def best(results: list[dict[str, Any]]) -> dict[str, float]:
    """Average the seeds per energy and return the energy with the best resolution."""
    by_energy: dict[float, list[float]] = defaultdict(list)
    for r in results:
        by_energy[r["energy"]].append(r["resolution"])
    means = {e: sum(v) / len(v) for e, v in by_energy.items()}
    energy = min(means, key=lambda e: means[e])
    return {"energy": energy, "resolution": means[energy], "points": len(results)}
