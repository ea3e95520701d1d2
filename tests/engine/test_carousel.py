"""The data carousel end to end on both databases: a simulated tape library feeds a work."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchid.executors.null import NullExecutor
from orchid.store.db import Database
from tests.engine.carouselkit import (
    collection_rows,
    fed_template,
    file_counts,
    file_rows,
    job_rows,
    sim_engine,
    tape_library,
)
from tests.engine.enginekit import ScriptedExecutor, describe, workflow

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("release", ["per-file", "per-collection"])
def test_small_campaign_in_both_release_modes(db: Database, tmp_path: Path, release: str) -> None:
    sim = tape_library([("data18:A", 300), ("data18:B", 200)])
    eng = sim_engine(db, tmp_path / "home", NullExecutor(), {"tape": sim})
    wf = eng.submit(
        fed_template(["data18:A", "data18:B"], release=release, delete_after="processed")
    )
    for _ in range(5000):
        if workflow(db, wf).status in ("succeeded", "failed", "partial", "cancelled"):
            break
        eng.round()
    assert workflow(db, wf).status == "succeeded", describe(db, wf)
    assert file_counts(db) == {"deleted": 500}
    jobs = job_rows(db)
    assert len(jobs) == 500 and all(j.status == "succeeded" for j in jobs.values())
    assert {c.status for c in collection_rows(db)} == {"closed"}
    assert sim.sim.used == 0  # every file left the disk buffer
