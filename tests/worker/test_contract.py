"""The executor contract, against the whole worker path: specs sent as JSON, leased by a
real worker, run by its local executor, reported back with their log tails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchid.executors.base import Executor
from tests.executors.contract import ExecutorContract
from tests.worker.memorydesk import WorkerAsExecutor


class TestWorkerContract(ExecutorContract):
    @pytest.fixture
    def executor(self, tmp_path: Path) -> Iterator[Executor]:
        ex = WorkerAsExecutor(tmp_path)
        yield ex
        ex.close()
