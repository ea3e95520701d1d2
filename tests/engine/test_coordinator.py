"""The coordinator and the event-driven loop: topics merged, rounds in priority order
(finishing work before new work), steps that did something run again, polls run all."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

from orchid.bus.memory import MemoryBus
from orchid.engine.agent import ENDED, JOBS, PRIORITY, TICK, UPDATES, WORKFLOWS, WORKS, Step
from orchid.engine.coordinator import EVERYTHING, Coordinator
from orchid.engine.runner import Runner
from orchid.store.db import Database


def test_topics_are_merged_and_ordered_by_priority() -> None:
    c = Coordinator(PRIORITY)
    c.add([WORKS, JOBS, UPDATES, JOBS, "custom", ENDED, WORKS])
    assert c.pending
    assert c.round() == [UPDATES, ENDED, JOBS, WORKS, "custom"]
    assert not c.pending and c.round() == []


def test_everything_means_every_known_topic() -> None:
    c = Coordinator(PRIORITY)
    c.add([EVERYTHING])
    assert c.round() == list(PRIORITY)


def test_finishing_work_comes_before_new_work() -> None:
    order = list(PRIORITY)
    assert order.index(UPDATES) < order.index(ENDED) < order.index(JOBS) < order.index(WORKS)
    assert order.index(ENDED) < order.index(WORKFLOWS) < order.index(JOBS)


class Recorder:
    """An agent whose steps record when they run; each has a number of things to do."""

    name = "recorder"

    def __init__(self, log: list[str], todo: Mapping[str, int]) -> None:
        self.log = log
        self.todo = dict(todo)

    def _step(self, topic: str) -> Step:
        def step() -> int:
            self.log.append(topic)
            if self.todo.get(topic, 0) > 0:
                self.todo[topic] -= 1
                return 1
            return 0

        return step

    def steps(self) -> Mapping[str, Step]:
        return {t: self._step(t) for t in (UPDATES, ENDED, JOBS, WORKS)}

    def run_once(self) -> int:
        return sum(step() for step in self.steps().values())


class Plain:
    """An agent without steps (as other agents may be): it runs in every round."""

    name = "plain"

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def run_once(self) -> int:
        self.log.append("plain")
        return 0


def test_a_round_runs_the_notified_steps_most_urgent_first() -> None:
    log: list[str] = []
    bus = MemoryBus()
    runner = Runner([Recorder(log, {}), Plain(log)], bus, poll_interval=3600)
    runner.coordinator.add([WORKS, JOBS, UPDATES])
    runner._round()
    assert log == [UPDATES, JOBS, WORKS, "plain"]


def test_a_step_that_did_something_runs_again_until_it_is_done() -> None:
    log: list[str] = []
    runner = Runner([Recorder(log, {JOBS: 2})], MemoryBus(), poll_interval=3600)
    runner.coordinator.add([JOBS, WORKS])
    for _ in range(4):
        runner._round()
    assert log == [JOBS, WORKS, JOBS, JOBS]  # 2 things done, then once more to see none


def test_the_loop_sleeps_until_a_topic_comes_then_runs_only_its_step() -> None:
    log: list[str] = []
    bus = MemoryBus()
    agent = Recorder(log, {})
    runner = Runner([agent], bus, poll_interval=3600)
    seen = threading.Event()

    def until() -> bool:
        if log.count(ENDED) >= 2:  # the first look, then the notification
            seen.set()
            return True
        return False

    thread = threading.Thread(target=runner.run, kwargs={"until": until, "check_every": 0.01})
    thread.start()
    try:
        # the first round looks at everything; then it waits for the bus
        for _ in range(200):
            if len(log) >= 4:
                break
            threading.Event().wait(0.01)
        first = list(log)
        bus.notify(ENDED)
        assert seen.wait(20)
    finally:
        runner.stop()
        thread.join(20)
    assert sorted(first) == sorted([UPDATES, ENDED, JOBS, WORKS])
    assert log[len(first) :] == [ENDED]


def test_a_poll_runs_every_step_even_if_the_bus_is_silent() -> None:
    log: list[str] = []
    runner = Runner([Recorder(log, {})], MemoryBus(), poll_interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, kwargs={"until": stop.is_set, "check_every": 0.01})
    thread.start()
    try:
        for _ in range(500):
            if log.count(WORKS) >= 3:  # the first look, then polls
                break
            threading.Event().wait(0.01)
    finally:
        stop.set()
        runner.stop()
        thread.join(20)
    assert log.count(WORKS) >= 3
    assert TICK not in log  # only topics that have steps run


def test_an_idle_loop_on_sqlite_runs_when_another_process_commits(tmp_path: Path) -> None:
    """No bus reaches across processes on SQLite; the loop notices their commits itself."""
    url = f"sqlite:///{tmp_path / 'orchid.db'}"
    db, other = Database(url), Database(url)  # two engines: as two processes
    db.upgrade()
    log: list[str] = []
    runner = Runner([Recorder(log, {})], MemoryBus(), poll_interval=3600, db=db)
    thread = threading.Thread(target=runner.run, kwargs={"check_every": 0.01})
    thread.start()
    try:
        for _ in range(500):  # the first look of the loop
            if WORKS in log:
                break
            threading.Event().wait(0.01)
        first = len(log)
        threading.Event().wait(0.3)  # idle: its own heartbeat is no news to it
        assert len(log) == first
        with other.begin() as conn:
            conn.execute(sa.text("DELETE FROM agents WHERE name = 'nobody'"))  # no change
        with other.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO bus_events (topic, origin, created_at) VALUES ('x', 'o', 0)")
            )
        for _ in range(500):
            if len(log) > first:
                break
            threading.Event().wait(0.01)
    finally:
        runner.stop()
        thread.join(20)
        db.dispose()
        other.dispose()
    assert sorted(log[first:]) == sorted([UPDATES, ENDED, JOBS, WORKS])  # as on a poll


def test_the_change_probe_sees_other_connections_commits_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orchid.db'}"
    db, other = Database(url), Database(url)
    db.upgrade()
    probe = db.change_probe()
    assert probe is not None
    try:
        assert not probe.changed()
        with other.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO bus_events (topic, origin, created_at) VALUES ('x', 'o', 0)")
            )
        assert probe.changed() and not probe.changed()
    finally:
        probe.close()
        db.dispose()
        other.dispose()


class _LockNotAvailable(Exception):
    sqlstate = "55P03"  # as psycopg.errors.LockNotAvailable


def test_a_step_that_gave_up_on_a_lock_runs_again_next_round_without_giving_up() -> None:
    """Another session held a lock past lock_timeout: one warning, the step runs again
    next round, and however long that lasts it does not count towards stopping the loop."""
    log: list[str] = []
    failures = [3]

    def step() -> int:
        log.append(JOBS)
        if failures[0]:
            failures[0] -= 1
            raise sa.exc.OperationalError("SELECT ... FOR NO KEY UPDATE", {}, _LockNotAvailable())
        return 0

    class Locked:
        name = "locked"

        def steps(self) -> Mapping[str, Step]:
            return {JOBS: step}

        def run_once(self) -> int:
            return step()

    runner = Runner([Locked()], MemoryBus(), poll_interval=3600)
    runner.coordinator.add([JOBS])
    for _ in range(5):
        runner._round()
    assert log == [JOBS] * 4  # three failures, each tried again at once, then done
    assert not runner._failing_since
