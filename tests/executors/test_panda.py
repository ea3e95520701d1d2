"""The PanDA executor, through the real panda-client, against a fake PanDA server.

The fake (tests/executors/fake_panda.py) implements exactly the endpoints these
panda-client calls use and runs each PanDA job as a local process, so the contract
suite checks real exit codes, results, walltime and kills; PanDA itself is not here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchid.executors.base import Executor, Resources
from orchid.executors.panda import PandaExecutor, PandaOptions
from tests.executors.contract import (
    NOOP,
    ExecutorContract,
    Reopen,
    finals,
    python,
    spec,
    wait_for,
)
from tests.executors.fake_panda import TOKEN, VO, FakePanda

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups"),
    pytest.mark.xdist_group("panda"),  # panda-client keeps its server in process globals
]


@pytest.fixture
def panda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePanda]:
    monkeypatch.setenv("ORCHID_TEST_PANDA_TOKEN", TOKEN)
    with FakePanda(tmp_path) as fake:
        yield fake


def options(panda: FakePanda, **kw: object) -> PandaOptions:
    base = {
        "url": panda.url,
        "vo": VO,
        "token_env": "ORCHID_TEST_PANDA_TOKEN",
        "python": sys.executable,
        "poll_interval": 0.05,
        "monitor_url": "https://bigpanda.example.org",
        "site": "DEFAULT_QUEUE",
    }
    return PandaOptions.model_validate({**base, **kw})


def make(panda: FakePanda, tmp_path: Path, **kw: object) -> PandaExecutor:
    return PandaExecutor(tmp_path / "logs", options(panda, **kw), namespace="test")


class TestPandaContract(ExecutorContract):
    local_logs = False  # logs stay in PanDA: log_uri links the monitor
    requested = Resources(cores=2, memory_mb=1500, gpus=0, walltime_s=600.0, queue="BNL_TEST")

    @pytest.fixture
    def executor(self, panda: FakePanda, tmp_path: Path) -> Iterator[PandaExecutor]:
        ex = make(panda, tmp_path)
        yield ex
        ex.close()

    @pytest.fixture
    def reopen(self, panda: FakePanda, tmp_path: Path) -> Iterator[Reopen]:
        made: list[PandaExecutor] = []

        def again(old: Executor) -> Executor:
            old.close()
            made.append(make(panda, tmp_path))
            return made[-1]

        yield again
        for ex in made:
            ex.close()

    def observed_resources(self, executor: Executor, key: str) -> Resources | None:
        assert isinstance(executor, PandaExecutor)
        fake = self._fake
        (task,) = [
            t for t in fake.tasks.values() if any(f.startswith(key + ".") for f in t["files"])
        ]
        p = task["params"]
        return Resources(
            cores=p["coreCount"],
            memory_mb=p["ramCount"],
            gpus=0,
            walltime_s=float(p["maxWalltime"]),
            queue=p["site"],
        )

    @pytest.fixture(autouse=True)
    def _keep_fake(self, panda: FakePanda) -> None:
        self._fake = panda


def test_a_work_is_one_task_and_released_jobs_join_it(panda: FakePanda, tmp_path: Path) -> None:
    ex = make(panda, tmp_path)
    try:
        ex.submit([spec(i, python(f"print({i})")) for i in (1, 2)])
        first = finals(wait_for(ex, 2))
        ex.submit([spec(3, python("print(3)"))])  # a child released after its parents
        later = finals(wait_for(ex, 1))
        assert {u.result for u in [*first.values(), *later.values()]} == {1, 2, 3}
        (task,) = panda.tasks.values()
        assert task["params"]["taskName"] == "test.1.work"
        assert len(task["files"]) == 3 and len(panda.jobs) == 3
        assert panda.calls.count("task/submit") == 2
        uri = later["1-3-1"].log_uri or ""
        assert uri.startswith("https://bigpanda.example.org/job?pandaid=")
    finally:
        ex.close()


def test_gpus_are_refused_with_a_hint(panda: FakePanda, tmp_path: Path) -> None:
    ex = make(panda, tmp_path)
    try:
        ex.submit([spec(1, python("print(1)"), resources=Resources(gpus=1)), spec(2, NOOP)])
        done = finals(wait_for(ex, 2))
        assert done["1-1-1"].state == "failed" and "queue" in (done["1-1-1"].error or "")
        assert done["1-2-1"].state == "succeeded"
        assert panda.jobs == {}
    finally:
        ex.close()


def test_a_wrong_token_is_refused(
    panda: FakePanda, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHID_TEST_PANDA_TOKEN", "not the token")
    ex = make(panda, tmp_path)
    try:
        with pytest.raises(Exception, match="cannot upload the sandbox"):
            ex.submit([spec(1, python("print(1)"))])
    finally:
        ex.close()


def test_abort_kills_the_jobs_and_then_the_task(panda: FakePanda, tmp_path: Path) -> None:
    from tests.executors.contract import SLEEP_LONG, wait_for_state

    ex = make(panda, tmp_path)
    try:
        jobs = [spec(i, SLEEP_LONG) for i in (1, 2)]
        ex.submit(jobs)
        updates: list = []
        for job in jobs:
            wait_for_state(ex, job.key, "running", updates)
        ex.cancel([jobs[0].key])  # one of two: its job is killed, the task goes on
        assert "task/kill" not in panda.calls
        ex.cancel([jobs[1].key])  # the last live one: the task is killed too
        done = finals(wait_for(ex, 2, into=updates))
        assert {u.error for u in done.values()} == {"cancelled"}
        assert panda.calls.count("job/kill") == 2 and "task/kill" in panda.calls
        (task,) = panda.tasks.values()
        assert task["status"] == "aborted"
        assert {j["jobStatus"] for j in panda.jobs.values()} == {"cancelled"}
    finally:
        ex.close()
