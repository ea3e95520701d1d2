"""What is on tape: datasets, their files with sizes, and where each file sits on which tape.

A library is generated from a seed, so a campaign can be replayed exactly. Files of a
dataset are written in contiguous runs over ``spread`` tapes, and a tape holds runs of
several datasets, as tapes written by a busy archive do: reading one dataset mounts a
few tapes, and a tape mounted for one dataset serves others too.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from orchid.errors import ConfigError

TB = 10**12


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset to put on tape: its name (``scope:name``), file count and mean file size."""

    name: str
    files: int
    mean_size: int


@dataclass(frozen=True)
class TapeFile:
    index: int
    dataset: str
    name: str
    size: int
    tape: int
    position: int  # byte offset on its tape


@dataclass
class Library:
    """Files by index, datasets by name, and how full each tape is."""

    seed: int = 0
    tape_capacity: int = 12 * TB  # LTO-8
    spread: int = 4  # tapes a dataset is written over at once
    size_sigma: float = 0.25  # spread of file sizes around a dataset's mean (log-normal)
    files: list[TapeFile] = field(default_factory=list)
    datasets: dict[str, list[int]] = field(default_factory=dict)  # name → file indexes
    by_name: dict[tuple[str, str], int] = field(default_factory=dict)
    tape_fill: list[int] = field(default_factory=list)
    _open: list[int] = field(default_factory=list)  # tapes being written

    @staticmethod
    def generate(
        datasets: Iterable[DatasetSpec],
        *,
        seed: int = 0,
        tape_capacity: int = 12 * TB,
        spread: int = 4,
        size_sigma: float = 0.25,
    ) -> Library:
        if tape_capacity <= 0 or spread < 1 or size_sigma < 0:
            raise ConfigError("tape_capacity must be > 0, spread >= 1 and size_sigma >= 0")
        lib = Library(seed, tape_capacity, spread, size_sigma)
        for spec in datasets:
            lib.add(spec)
        return lib

    @property
    def tapes(self) -> int:
        return len(self.tape_fill)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def add(self, spec: DatasetSpec) -> list[int]:
        """Write a dataset to tape; returns its file indexes."""
        if spec.name in self.datasets:
            raise ConfigError(f"dataset {spec.name!r} is already in the library")
        if spec.files < 0 or spec.mean_size < 1:
            raise ConfigError(f"dataset {spec.name!r}: files must be >= 0 and mean_size >= 1")
        sizes = _sizes(random.Random(f"{self.seed}:{spec.name}"), spec, self.size_sigma)
        self.datasets[spec.name] = indexes = []
        run = max(math.ceil(spec.files / self.spread), 1)
        while len(self._open) < self.spread:
            self._open.append(self._new_tape())
        for k, size in enumerate(sizes):
            slot = (len(self.datasets) + k // run) % self.spread
            tape = self._open[slot]
            if self.tape_fill[tape] + size > self.tape_capacity and self.tape_fill[tape] > 0:
                tape = self._open[slot] = self._new_tape()
            f = TapeFile(len(self.files), spec.name, f"f{k:06d}", size, tape, self.tape_fill[tape])
            self.tape_fill[tape] += size
            self.files.append(f)
            self.by_name[(spec.name, f.name)] = f.index
            indexes.append(f.index)
        return indexes

    def _new_tape(self) -> int:
        self.tape_fill.append(0)
        return len(self.tape_fill) - 1

    def tapes_of(self, indexes: Sequence[int]) -> set[int]:
        return {self.files[i].tape for i in indexes}


def _sizes(rng: random.Random, spec: DatasetSpec, sigma: float) -> list[int]:
    """File sizes drawn around the mean, scaled so the dataset has exactly files × mean bytes."""
    if spec.files == 0:
        return []
    mu = math.log(spec.mean_size) - sigma * sigma / 2
    raw = [rng.lognormvariate(mu, sigma) for _ in range(spec.files)]
    target = spec.files * spec.mean_size
    scale = target / sum(raw)
    sizes = [max(int(x * scale), 1) for x in raw]
    sizes[-1] = max(sizes[-1] + target - sum(sizes), 1)
    return sizes
