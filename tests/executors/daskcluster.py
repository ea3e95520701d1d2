"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1.

Started with the ``dask`` command of this interpreter's environment and stopped by PID
(SIGTERM, then SIGKILL); workers run without a nanny, so a worker killed by a test stays
dead. Waits are generous deadlines, for a loaded machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.executors.daemons import Daemons

DASK = str(Path(sys.executable).with_name("dask"))
START_DEADLINE_S = 120.0


class DaskCluster(Daemons):
    """A scheduler and named workers; ``workers`` maps a name to its ``--resources``."""

    def __init__(self, folder: Path, workers: Mapping[str, str]) -> None:
        self.folder = folder
        self.address = ""
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self._scheduler: subprocess.Popen[bytes] | None = None
        self._specs = dict(workers)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )

    def start(self) -> None:
        info = self.folder / "scheduler.json"
        self._scheduler = self._spawn(
            "scheduler",
            [
                DASK,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(info),
            ],
        )
        deadline = time.monotonic() + START_DEADLINE_S
        while not info.exists() or not info.read_text().strip():
            self._check_alive(self._scheduler, "scheduler", deadline)
            time.sleep(0.1)
        self.address = json.loads(info.read_text())["address"]
        for name, resources in self._specs.items():
            self.add_worker(name, resources)
        self.wait_for_workers(len(self._specs))

    def add_worker(self, name: str, resources: str = "") -> None:
        argv = [
            DASK,
            "worker",
            self.address,
            "--name",
            name,
            "--nthreads",
            "2",
            "--no-nanny",
            "--no-dashboard",
            "--host",
            "127.0.0.1",
        ]
        if resources:
            argv += ["--resources", resources]
        self.workers[name] = self._spawn(f"worker-{name}", argv)

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=START_DEADLINE_S, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=START_DEADLINE_S)

    def kill_worker(self, name: str) -> None:
        process = self.workers[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        # workers first, and without ceremony: nothing of theirs needs to be kept
        for p in self.workers.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        procs = [*self.workers.values(), *([self._scheduler] if self._scheduler else [])]
        if self._scheduler is not None and self._scheduler.poll() is None:
            self._scheduler.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=15)

    def _check_alive(self, p: subprocess.Popen[bytes], what: str, deadline: float) -> None:
        if p.poll() is not None:
            log = (self.folder / f"{what}.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"dask {what} exited with {p.returncode}:\n{log}")
        if time.monotonic() > deadline:
            pytest.fail(f"dask {what} did not start in {START_DEADLINE_S:g}s")


@pytest.fixture(scope="session", name="cluster")
def cluster_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """One cluster for the test process (tests using it share the xdist group "dask"):
    workers ``w-a`` (CPU=2, MEMORY) and ``w-gpu`` (CPU=2, MEMORY, GPU=1)."""
    folder = tmp_path_factory.mktemp("dask")
    workers = {"w-a": "CPU=2,MEMORY=4e9", "w-gpu": "CPU=2,MEMORY=4e9,GPU=1"}
    with DaskCluster(folder, workers) as c:
        yield c
