"""The Dask executor against a real ``dask scheduler`` and two ``dask worker`` processes.

The cluster runs on 127.0.0.1 for the whole module (one xdist group, so one process
owns it); the worker-death test starts a cluster of its own, since it kills a worker.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchid.errors import ConfigError
from orchid.executors.base import Executor, JobUpdate, Resources
from orchid.executors.dask import DaskExecutor
from tests.executors.contract import (
    DEADLINE_S,
    ExecutorContract,
    Reopen,
    finals,
    python,
    spec,
    wait_for,
    wait_for_state,
)
from tests.executors.daskcluster import DaskCluster, cluster_fixture  # noqa: F401 - `cluster`

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups"),
    pytest.mark.xdist_group("dask"),
]


class TestDaskContract(ExecutorContract):
    requested = Resources(cores=2, memory_mb=1500, gpus=1, walltime_s=600.0, queue="w-gpu")

    @pytest.fixture
    def namespace(self) -> str:
        return f"t{uuid.uuid4().hex[:8]}"  # tests reuse attempt keys; the cluster outlives them

    @pytest.fixture
    def executor(
        self, cluster: DaskCluster, tmp_path: Path, namespace: str
    ) -> Iterator[DaskExecutor]:
        ex = DaskExecutor(tmp_path / "logs", address=cluster.address, namespace=namespace)
        yield ex
        ex.close()

    @pytest.fixture
    def reopen(self, cluster: DaskCluster, tmp_path: Path, namespace: str) -> Iterator[Reopen]:
        made: list[DaskExecutor] = []

        def again(old: Executor) -> Executor:
            old.close()  # as a crash: the client goes, its published tasks stay
            new = DaskExecutor(tmp_path / "logs", address=cluster.address, namespace=namespace)
            made.append(new)
            return new

        yield again
        for ex in made:
            ex.close()

    def observed_resources(self, executor: Executor, key: str) -> Resources | None:
        assert isinstance(executor, DaskExecutor)
        name = executor._task(key)

        def restrictions(dask_scheduler: object) -> tuple[dict[str, float], list[str]]:
            ts = dask_scheduler.tasks[name]  # type: ignore[attr-defined]
            workers = dask_scheduler.workers  # type: ignore[attr-defined]
            names = [workers[a].name if a in workers else a for a in ts.worker_restrictions or ()]
            return dict(ts.resource_restrictions or {}), sorted(names)

        res, workers = executor._client.run_on_scheduler(restrictions)
        (worker,) = workers
        return Resources(
            cores=int(res.get("CPU", 1)),
            memory_mb=int(res["MEMORY"] / 2**20) if "MEMORY" in res else None,
            gpus=int(res.get("GPU", 0)),
            walltime_s=self.requested.walltime_s,  # enforced on the worker, not by Dask
            queue=worker,
        )


def test_jobs_run_where_their_resources_are(cluster: DaskCluster, tmp_path: Path) -> None:
    ex = DaskExecutor(tmp_path / "logs", address=cluster.address, namespace="placement")
    try:
        code = "import json, os; print(json.dumps(os.environ['ORCHID_NODE']))"
        gpu = [spec(i, python(code), resources=Resources(gpus=1)) for i in range(1, 4)]
        anywhere = [spec(i, python(code)) for i in range(4, 8)]
        ex.submit(gpu + anywhere)
        done = finals(wait_for(ex, len(gpu) + len(anywhere)))
        for job in gpu:
            assert done[job.key].result.startswith("w-gpu "), done[job.key]
        assert {done[j.key].state for j in anywhere} == {"succeeded"}
    finally:
        ex.close()


def test_unreachable_scheduler_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"
    ):
        DaskExecutor(tmp_path, address="tcp://127.0.0.1:9", connect_timeout_s=2)


def test_worker_dying_mid_job_makes_the_job_retry(tmp_path: Path) -> None:
    gate, marks = tmp_path / "gate", tmp_path / "marks"
    # writes where it runs, then waits for the gate; ends if its worker (parent) died
    code = (
        "import os, sys, time\n"
        "parent = os.getppid()\n"
        "with open(sys.argv[2], 'a') as f: f.write(os.environ['ORCHID_NODE'].split()[0] + '\\n')\n"
        "while not os.path.exists(sys.argv[1]):\n"
        "    if os.getppid() != parent: sys.exit(7)\n"
        "    time.sleep(0.05)\n"
        "print(open(sys.argv[2]).read().split())\n"
    )
    with DaskCluster(tmp_path, {"w-1": "", "w-2": ""}) as cluster:
        ex = DaskExecutor(tmp_path / "logs", address=cluster.address)
        try:
            job = spec(1, python(code, str(gate), str(marks)))
            ex.submit([job])
            updates: list[JobUpdate] = []
            wait_for_state(ex, job.key, "running", updates)
            first = _lines(marks, 1)[0]
            cluster.kill_worker(first)
            second = _lines(marks, 2)[1]  # the scheduler ran it again, on the other worker
            assert {first, second} == {"w-1", "w-2"}
            gate.touch()
            update = finals(wait_for(ex, 1, into=updates))[job.key]
            assert update.state == "succeeded", update.error
            assert update.exit_code == 0
        finally:
            ex.close()


def _lines(path: Path, n: int) -> list[str]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        lines = path.read_text().split() if path.exists() else []
        if len(lines) >= n:
            return lines
        if time.monotonic() > deadline:
            pytest.fail(f"{path} has {lines}, not {n} lines")
        time.sleep(0.05)


def test_dask_is_importable_without_a_cluster() -> None:
    import orchid.executors.dask as module

    assert module.dask_resources(Resources()) == {}
    assert module.dask_resources(Resources(cores=4, gpus=2, memory_mb=1)) == {
        "CPU": 4,
        "GPU": 2,
        "MEMORY": 2**20,
    }
    assert os.path.basename(module.__file__ or "") == "dask.py"


def test_without_an_address_it_starts_a_local_cluster(tmp_path: Path) -> None:
    ex = DaskExecutor(tmp_path / "logs", local_workers=1, namespace="lc")
    try:
        assert ex.address.startswith("tcp://127.0.0.1:")
        ex.submit([spec(1, python("print(42)"))])
        assert finals(wait_for(ex, 1))["1-1-1"].result == 42
    finally:
        ex.close()
