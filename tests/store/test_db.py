"""The service's own files: an SQLite database (and its -wal and -shm) only its user may
read, in folders only its user may enter."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchid.store.db import Database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_is_0600_in_0700_folders(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "home" / "deeper" / "orchid.db"
        db = Database(f"sqlite:///{path}")
        db.upgrade()
        with db.begin() as conn:  # WAL mode: -wal and -shm exist while connected
            conn.execute(sa.text("SELECT 1"))
            assert mode(path) == 0o600
            for suffix in ("-wal", "-shm"):
                side = Path(f"{path}{suffix}")
                assert side.exists() and mode(side) == 0o600, suffix
        assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
        db.dispose()
    finally:
        os.umask(old)


def test_an_open_database_is_closed_to_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "orchid.db"
    Database(f"sqlite:///{path}").upgrade()
    path.chmod(0o644)
    Database(f"sqlite:///{path}").dispose()
    assert mode(path) == 0o600
    assert "was readable by others" in caplog.text
