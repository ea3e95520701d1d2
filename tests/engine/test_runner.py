"""The runner's start-up on a database another process is writing to."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from orchid.engine.runner import log_folder
from orchid.settings import Settings
from orchid.store import tokens
from orchid.store.db import Database

pytestmark = pytest.mark.timeout(60)


def test_the_log_folder_waits_for_a_writer_instead_of_failing(tmp_path: Path) -> None:
    """Agents started while `orchid submit` wrote to a new SQLite database exited with
    "database is locked": the instance id was read, then written, in a deferred
    transaction, which SQLite cannot upgrade once another process committed meanwhile."""
    url = f"sqlite:///{tmp_path / 'orchid.db'}"
    writer, agent = Database(url), Database(url)
    writer.upgrade()
    settings = Settings.load(env={}, db=url, home=tmp_path / "home")
    holding, found = threading.Event(), []

    def start_agent() -> None:
        holding.wait()
        found.append(log_folder(settings, agent))

    thread = threading.Thread(target=start_agent)
    thread.start()
    try:
        with writer.begin() as conn:  # a submission in progress: it holds the write lock
            tokens.create(conn, user="alice", admin=False, groups=[], now=time.time())
            holding.set()
            time.sleep(0.5)  # the agent reads meanwhile, then asks for the lock
    finally:
        thread.join(30)
    assert len(found) == 1 and found[0].parent == settings.log_dir
    assert log_folder(settings, writer) == found[0]  # one id per database
    writer.dispose()
    agent.dispose()
