"""The sleep executor: the contract parts that apply, and jobs that take their time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchid.datamgr.tapesim import ManualClock
from orchid.executors.sleep import SleepExecutor
from tests.executors.contract import NOOP, ExecutorContract, spec


class TestSleepContract(ExecutorContract):
    runs_commands = False

    @pytest.fixture
    def executor(self) -> Iterator[SleepExecutor]:
        ex = SleepExecutor(0.01, slots=1000)
        yield ex
        ex.close()


def test_jobs_end_after_their_time_and_take_a_slot_meanwhile() -> None:
    clock = ManualClock(100.0)
    ex = SleepExecutor(30.0, slots=2, clock=clock)
    ex.submit([spec(1, NOOP), spec(2, NOOP)])
    assert ex.capacity() == 0
    assert [u.state for u in ex.poll()] == ["running", "running"]
    clock.advance(29.0)
    assert ex.poll() == []
    clock.advance(1.0)
    done = ex.poll()
    assert [(u.job_id, u.state, u.at) for u in done] == [
        (1, "succeeded", 130.0),
        (2, "succeeded", 130.0),
    ]
    assert ex.capacity() == 2


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        SleepExecutor(-1.0)
    with pytest.raises(ValueError):
        SleepExecutor(1.0, slots=0)
