"""The transition audit the test fixtures install really refuses illegal moves."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from orchid.engine.submit import submit
from orchid.store.db import Database
from orchid.store.tables import jobs, workflows


def test_an_illegal_status_change_is_refused(db: Database) -> None:
    wf = submit(
        db,
        {"name": "a", "works": [{"name": "w", "noop": True, "jobs": [{"name": "j"}]}]},
        base_dir=None,
        now=time.time(),
    )
    with pytest.raises(sa.exc.DatabaseError, match="illegal"), db.begin() as conn:
        conn.execute(sa.update(jobs).values(status="succeeded"))  # waiting -> succeeded
    with pytest.raises(sa.exc.DatabaseError, match="illegal"), db.begin() as conn:
        conn.execute(sa.update(workflows).where(workflows.c.id == wf).values(status="succeeded"))
    with db.begin() as conn:  # a legal one passes
        conn.execute(sa.update(jobs).values(status="ready"))
