"""tapesim: the data-manager contract, and the tape model itself."""

from __future__ import annotations

import math

import pytest

from orchid.core.states import FileStatus as F
from orchid.datamgr.tapesim import (
    DatasetSpec,
    Library,
    ManualClock,
    TapeConfig,
    TapeLibrarySim,
    TapeSim,
)
from orchid.errors import ConfigError
from tests.datamgr.contract import DataManagerContract, Harness

GB = 10**9


class TestTapesimContract(DataManagerContract):
    @pytest.fixture
    def harness(self) -> Harness:
        lib = Library.generate([DatasetSpec("data18:AOD", 6, GB)], seed=3, tape_capacity=3 * GB)
        clock = ManualClock()
        mgr = TapeSim(lib, TapeConfig(drives=2), clock)
        sizes = {lib.files[i].name: lib.files[i].size for i in lib.datasets["data18:AOD"]}
        return Harness(mgr, "data18:AOD", sizes, wait=lambda: clock.advance(30.0) and None)


def library(n: int = 40, datasets: int = 2, **kw: object) -> Library:
    specs = [DatasetSpec(f"s:d{k}", n, GB) for k in range(datasets)]
    return Library.generate(specs, seed=7, tape_capacity=10 * GB, spread=2, **kw)  # type: ignore[arg-type]


def run(sim: TapeLibrarySim, until: float = 1e7) -> None:
    sim.advance(until)


def test_sizes_add_up_and_files_spread_over_tapes() -> None:
    lib = library()
    assert lib.total_bytes == 2 * 40 * GB
    assert all(f.size > 0 for f in lib.files)
    assert len(lib.tapes_of(lib.datasets["s:d0"])) >= 2
    assert all(fill <= 10 * GB + max(f.size for f in lib.files) for fill in lib.tape_fill)
    again = library()
    assert [f.size for f in again.files] == [f.size for f in lib.files]  # seeded


def test_every_file_lands_and_the_makespan_respects_the_tape_bound() -> None:
    lib = library()
    cfg = TapeConfig(drives=2, bandwidth=200e6, mount_s=60, unmount_s=20, locate_s=10)
    sim = TapeLibrarySim(lib, cfg)
    sim.request(range(len(lib.files)), 0.0)
    run(sim)
    assert all(sim.status(i) == F.AVAILABLE for i in range(len(lib.files)))
    bound = lib.total_bytes / (2 * 200e6) + lib.tapes * (60 + 20) / 2
    assert bound <= sim.stats.last_landing <= bound * 1.3
    assert sim.stats.mounts == lib.tapes  # requests grouped by tape: each tape mounted once
    assert sim.stats.peak_buffer == lib.total_bytes


def test_a_full_buffer_blocks_reads_until_files_are_released() -> None:
    lib = library(n=10, datasets=1)
    sim = TapeLibrarySim(lib, TapeConfig(drives=2, buffer_bytes=3 * GB))
    sim.request(range(10), 0.0)
    run(sim, 1e6)
    on_disk = [i for i in range(10) if sim.status(i) == F.AVAILABLE]
    assert 1 <= len(on_disk) <= 3 and sim.used <= 3 * GB + max(f.size for f in lib.files)
    assert sim.stats.peak_buffer <= 4 * GB
    while on_disk:
        sim.release(on_disk, sim.now)
        run(sim, sim.now + 1e5)
        on_disk = [i for i in range(10) if sim.status(i) == F.AVAILABLE]
    assert all(sim.status(i) == F.DELETED for i in range(10))


def test_failures_and_stragglers_are_seeded() -> None:
    lib = library(n=200, datasets=1)
    cfg = TapeConfig(
        drives=2, failure_rate=0.1, straggler_rate=0.05, straggler_s=(7200, 7200), seed=5
    )
    sims = [TapeLibrarySim(lib, cfg) for _ in range(2)]
    for sim in sims:
        sim.request(range(200), 0.0)
        run(sim)
    a, b = sims
    failed = [i for i in range(200) if a.status(i) == F.FAILED]
    assert failed == [i for i in range(200) if b.status(i) == F.FAILED]
    assert 5 <= len(failed) <= 40 and a.stats.stragglers > 0
    assert a.logs["s:d0"][-1] == b.logs["s:d0"][-1]
    late = [i for i in range(200) if not math.isnan(a.landed_at[i])]
    assert max(a.landed_at[i] for i in late) >= 7200  # a straggler landed hours later
    a.request(failed, a.now)  # a failed file is read again
    run(a, a.now + 1e6)
    assert sum(a.status(i) == F.FAILED for i in failed) < len(failed)


def test_releasing_a_queued_file_cancels_its_request() -> None:
    lib = library(n=20, datasets=1)
    sim = TapeLibrarySim(lib, TapeConfig(drives=1))
    sim.request(range(20), 0.0)
    sim.release([19], 1.0)
    run(sim)
    assert sim.status(19) == F.NEW and sim.stats.reads == 19


def test_unknown_datasets_are_made_up_when_asked() -> None:
    mgr = TapeSim(Library(), TapeConfig(), ManualClock(), auto=10)
    files = mgr.list_files("data18:anything")
    assert 5 <= len(files) <= 15 and {f.status for f in files} == {F.NEW}
    assert [f.name for f in mgr.list_files("data18:anything")] == [f.name for f in files]


@pytest.mark.parametrize(
    "bad",
    [
        {"drives": 0},
        {"bandwidth": 0},
        {"failure_rate": 2},
        {"buffer_bytes": 0},
        {"straggler_s": (5, 1)},
    ],
)
def test_bad_configuration_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        TapeLibrarySim(library(), TapeConfig(**bad))  # type: ignore[arg-type]
