"""The service's own files: an SQLite database (and its -wal and -shm) only its user may
read, in folders only its user may enter."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchid.store.db import BUSY_TIMEOUT_MS, Database, WriteLockBusy, is_sqlite_file


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


def _commit_elsewhere(path: Path, value: int) -> None:
    """Another process adds a row and closes its only connection (which checkpoints and
    deletes the WAL if it can take the database's exclusive lock)."""
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('INSERT INTO seen VALUES (?)', (int(sys.argv[2]),)); c.commit(); c.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(path), str(value)], check=True, timeout=30)


@pytest.mark.parametrize("touch", ["another Database", "is_sqlite_file"])
def test_opening_the_file_again_keeps_this_process_seeing_others_commits(
    tmp_path: Path, touch: str
) -> None:
    """Closing any descriptor of the file drops this process's SQLite locks: the next
    process to close its last connection then deleted the WAL, and the connections here
    never saw another commit (a server refused a token made a moment before)."""
    path = tmp_path / "orchid.db"
    db = Database(f"sqlite:///{path}")
    with db.begin() as conn:
        conn.execute(sa.text("CREATE TABLE seen (x INTEGER)"))
    with db.engine.connect() as conn:  # an idle pooled connection from now on
        conn.execute(sa.text("SELECT count(*) FROM seen")).scalar()
    if touch == "another Database":
        Database(f"sqlite:///{path}").dispose()  # as the event bus makes its own pool
    else:
        assert is_sqlite_file(path)
    for value in (1, 2):
        _commit_elsewhere(path, value)
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM seen")).scalar() == value
    db.dispose()


def test_is_sqlite_file_tells_databases_from_other_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database, and long enough to have a header\n" * 4)
    empty = tmp_path / "empty.db"
    empty.touch()
    assert not is_sqlite_file(text) and text.read_text().startswith("not a database")
    assert not is_sqlite_file(empty) and empty.stat().st_size == 0  # nothing written
    assert not is_sqlite_file(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


def test_a_write_transaction_that_may_not_wait_is_refused_while_another_holds_the_lock(
    tmp_path: Path,
) -> None:
    """``begin(wait=False)`` on SQLite: WriteLockBusy at once while another connection
    holds the write lock (nothing done), and the connection waits as usual afterwards."""
    db = Database(f"sqlite:///{tmp_path / 'orchid.db'}")
    db.upgrade()
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.begin():
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert locked.wait(10)
    try:
        with pytest.raises(WriteLockBusy), db.begin(wait=False):
            pytest.fail("took the write lock another connection holds")
        waited: list[bool] = []

        def wait_for_it() -> None:
            with db.begin():  # the same pooled connections wait for the lock again
                waited.append(True)

        waiter = threading.Thread(target=wait_for_it, daemon=True)
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive() and not waited
    finally:
        release.set()
        holder.join(10)
    waiter.join(30)
    assert waited == [True]
    with db.begin(wait=False) as conn:  # free: taken at once
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == BUSY_TIMEOUT_MS
    db.dispose()


def test_a_write_transaction_that_may_not_wait_never_waits_for_a_pooled_connection(
    tmp_path: Path,
) -> None:
    """``begin(wait=False)`` is the event loop's: while every connection of the shared
    pool is out (threads that each wait for the write lock hold one), it still takes the
    free write lock at once instead of waiting for one of them (or raising the pool's
    TimeoutError); a second such caller meanwhile is told WriteLockBusy."""
    db = Database(f"sqlite:///{tmp_path / 'orchid.db'}")
    db.upgrade()
    pool = db.engine.pool
    pool._timeout = 0.1  # type: ignore[attr-defined]  # (were it waited for: not 30 s)
    held = []
    try:
        while True:
            try:
                held.append(db.engine.connect())
            except sa.exc.TimeoutError:
                break
        assert len(held) >= 5
        with db.begin(wait=False) as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            with pytest.raises(WriteLockBusy), db.begin(wait=False):
                pytest.fail("a second caller that may not wait got a connection")
        with db.begin(wait=False) as conn:  # free again
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    finally:
        for conn in held:
            conn.close()
    db.dispose()
