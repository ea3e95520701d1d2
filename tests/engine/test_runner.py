"""The runner's start-up on a database another process is writing to."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest

from orchid.engine.runner import PROBE_S, ProbeGate, log_folder
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


def test_the_probe_gate_backs_off_while_other_processes_writes_are_nothing_to_the_agents() -> None:
    """A worker desk commits hundreds of times a second, none of it news to the agents:
    the rounds the probe asks for then come twice as far apart each time they find
    nothing, up to the poll interval; one that finds something, or a quiet look, brings
    the next at once (a submission to a quiet database starts within PROBE_S)."""
    gate = ProbeGate(longest=1.0)
    now, rounds = 0.0, []
    for _ in range(200):  # 10 s of looks every PROBE_S, each seeing another commit
        now += PROBE_S
        if gate.look(True, now):
            rounds.append(now)
            gate.ran(False, now)
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(rounds)]
    # (a look every PROBE_S: a gap may be one look longer than the pause)
    assert gaps[:5] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8], abs=PROBE_S + 1e-6)
    assert gaps[6:] == pytest.approx([1.0] * len(gaps[6:]), abs=PROBE_S + 1e-6)
    assert len(rounds) < 20  # not 200
    gate = ProbeGate(longest=1.0)
    assert gate.look(True, 0.0)  # a commit to a quiet database: a round at once
    gate.ran(False, 0.0)  # it found nothing: the next waits PROBE_S
    assert not gate.look(True, 0.01)
    assert gate.look(False, 0.05)  # (the commit seen meanwhile is not forgotten)
    gate.ran(True, 0.05)  # it found something: the next comes at once
    assert gate.look(True, 0.06)
    gate.ran(False, 0.06)
    assert not gate.look(True, 0.07)
    gate.polled()  # a poll's round covered that commit
    assert not gate.look(False, 0.08)  # ...and a quiet look: the next commit is news at once
    assert gate.look(True, 0.09)
