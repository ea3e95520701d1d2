"""Fixtures of the engine tests: runners on the ``db`` fixture (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchid.store.db import Database
from tests.engine.enginekit import EngineFactory, engine_factory


@pytest.fixture
def make_engine(db: Database, tmp_path: Path) -> Iterator[EngineFactory]:
    """Build engines (runner + executor) on the test's database; executors close afterwards."""
    closers: list[Callable[[], None]] = []
    yield engine_factory(db, tmp_path / "home", closers)
    for close in reversed(closers):
        close()
