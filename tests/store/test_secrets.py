"""Values the services share through the database: the instance id of its log folder."""

from __future__ import annotations

import re
from pathlib import Path

from orchid.store import secrets
from orchid.store.db import Database


def test_instance_id_is_made_once_and_differs_between_databases(
    db: Database, tmp_path: Path
) -> None:
    with db.engine.begin() as conn:  # a database upgraded from before has none: made now
        first = secrets.instance_id(conn, 1.0)
    with db.engine.begin() as conn:
        assert secrets.instance_id(conn, 2.0) == first
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        other.upgrade()
        with other.engine.begin() as conn:
            assert secrets.instance_id(conn, 1.0) != first
    finally:
        other.dispose()
