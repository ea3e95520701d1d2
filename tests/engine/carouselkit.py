"""Helpers for data-carousel engine tests: an engine wired to a simulated tape library."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from orchid.datamgr.base import DataManager
from orchid.datamgr.tapesim import DatasetSpec, Library, ManualClock, TapeConfig, TapeSim
from orchid.engine.runner import Runner, make_runner
from orchid.executors.base import Executor
from orchid.store.db import Database
from orchid.store.tables import collections, files
from orchid.store.tables import jobs as jobs_table
from tests.engine.enginekit import Engine, settings_for


def tape_library(
    datasets: Sequence[tuple[str, int]], *, mean_size: int = 2 * 10**9, seed: int = 1, **cfg: Any
) -> TapeSim:
    """A tapesim on a hand-moved clock, holding these (name, files) datasets."""
    lib = Library.generate(
        [DatasetSpec(name, n, mean_size) for name, n in datasets],
        seed=seed,
        tape_capacity=200 * mean_size,
        spread=2,
    )
    cfg.setdefault("drives", 2)
    return TapeSim(lib, TapeConfig(seed=seed, **cfg), ManualClock())


@dataclass
class SimEngine(Engine):
    sim: TapeSim
    step: float

    def round(self) -> int:
        clock = self.sim.clock
        assert isinstance(clock, ManualClock)
        clock.advance(self.step)
        return self.runner.run_once()


def sim_engine(
    db: Database,
    home: Path,
    executor: Executor,
    managers: Mapping[str, DataManager],
    step: float = 60.0,
    sim: TapeSim | None = None,
) -> SimEngine:
    settings = settings_for(db, home)
    runner: Runner
    runner = make_runner(settings, db, executor=executor, data_managers=managers)
    ex = runner.executor
    home.mkdir(parents=True, exist_ok=True)
    sim = sim or next(m for m in managers.values() if isinstance(m, TapeSim))
    return SimEngine(db, runner, ex, home, sim, step)


def fed_template(collections_: Sequence[str], **input_: Any) -> dict[str, Any]:
    return {
        "name": "carousel",
        "works": [
            {
                "name": "reprocess",
                "noop": True,
                "input": {"manager": "tape", "collections": list(collections_), **input_},
            }
        ],
    }


def file_counts(db: Database) -> Counter[str]:
    with db.engine.connect() as conn:
        return Counter(
            {
                str(s): int(n)
                for s, n in conn.execute(
                    sa.select(files.c.status, sa.func.count()).group_by(files.c.status)
                )
            }
        )


def file_rows(db: Database) -> list[Any]:
    with db.engine.connect() as conn:
        return list(conn.execute(sa.select(files).order_by(files.c.id)))


def job_rows(db: Database) -> dict[int, Any]:
    with db.engine.connect() as conn:
        return {r.id: r for r in conn.execute(sa.select(jobs_table))}


def collection_rows(db: Database) -> list[Any]:
    with db.engine.connect() as conn:
        return list(conn.execute(sa.select(collections).order_by(collections.c.id)))
