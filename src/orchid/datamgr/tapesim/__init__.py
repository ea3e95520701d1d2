"""``tapesim``: a simulated tape library (drives, mounts, bandwidth, a finite disk buffer,
failures and stragglers) on an accelerated clock, for demos, tests and benchmarks."""

from orchid.datamgr.tapesim.clock import AcceleratedClock, ManualClock
from orchid.datamgr.tapesim.library import TB, DatasetSpec, Library
from orchid.datamgr.tapesim.manager import TapeSim
from orchid.datamgr.tapesim.sim import TapeConfig, TapeLibrarySim

__all__ = [
    "TB",
    "AcceleratedClock",
    "DatasetSpec",
    "Library",
    "ManualClock",
    "TapeConfig",
    "TapeLibrarySim",
    "TapeSim",
]
