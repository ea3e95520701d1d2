"""Clocks for simulations: accelerated wall time, and a hand-moved clock for tests."""

from __future__ import annotations

import time
from collections.abc import Callable


class AcceleratedClock:
    """Simulated seconds that pass ``speed`` times faster than the wall clock.

    ``clock()`` reads ``start`` at construction and ``start + speed × elapsed`` after;
    :meth:`to_sim` converts an epoch timestamp the engine wrote into simulated time.
    """

    def __init__(
        self,
        speed: float,
        start: float = 0.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0; got {speed}")
        self.speed = speed
        self.start = start
        self.wall = wall
        self.origin = wall()

    def __call__(self) -> float:
        return self.start + (self.wall() - self.origin) * self.speed

    def to_sim(self, wall_time: float) -> float:
        return self.start + (wall_time - self.origin) * self.speed

    def wall_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self.speed


class ManualClock:
    """Time that moves only when told to (tests)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
