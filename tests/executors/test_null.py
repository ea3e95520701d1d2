"""The null executor: the contract parts that apply, and instant success for every job."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchid.executors.base import Usage
from orchid.executors.null import NullExecutor
from tests.executors.contract import NOOP, ExecutorContract, python, spec


class TestNullContract(ExecutorContract):
    runs_commands = False

    @pytest.fixture
    def executor(self) -> Iterator[NullExecutor]:
        ex = NullExecutor()
        yield ex
        ex.close()


def test_every_job_succeeds_at_submit_whatever_its_payload() -> None:
    ex = NullExecutor(clock=lambda: 42.0)
    failing = python("import sys; sys.exit(3)")
    jobs = [spec(1, failing), spec(2, NOOP), spec(3, failing, attempt=2)]
    ex.submit(jobs)
    updates = ex.poll()
    assert [u.key for u in updates] == [j.key for j in jobs]
    for update, job in zip(updates, jobs, strict=True):
        assert update.state == "succeeded"
        assert (update.job_id, update.attempt) == (job.job_id, job.attempt)
        assert update.exit_code == 0 and update.result is None and update.error is None
        assert update.usage == Usage()
        assert update.at == 42.0
    assert ex.poll() == []


def test_wake_is_called_after_each_non_empty_submit() -> None:
    calls: list[int] = []
    ex = NullExecutor(wake=lambda: calls.append(len(ex.poll())))
    ex.submit([spec(1, NOOP), spec(2, NOOP)])
    ex.submit([])
    ex.submit([spec(3, NOOP)])
    assert calls == [2, 1]  # the updates are queued before wake() runs


def test_capacity_is_large_and_constant() -> None:
    ex = NullExecutor()
    before = ex.capacity()
    assert before >= 10_000
    ex.submit([spec(i, NOOP) for i in range(1, 1001)])
    assert ex.capacity() == before
    assert ex.name == "null"
