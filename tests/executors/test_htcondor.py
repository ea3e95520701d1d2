"""The HTCondor executor against a fake of the htcondor2 binding calls it makes.

The fake (tests/executors/fake_htcondor.py) runs jobs as local processes, so the contract
suite checks real exit codes, results, logs, walltime and cancellation; what it cannot
check is a real pool's behaviour beyond those calls (see the README).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchid.errors import ConfigError
from orchid.executors._condor_submit import condor_arguments, condor_environment
from orchid.executors.base import Executor, Resources
from orchid.executors.htcondor import HTCondorExecutor, HTCondorOptions
from tests.executors.contract import ExecutorContract, Reopen, finals, python, spec, wait_for
from tests.executors.fake_htcondor import FakeHTCondor, expand, parse_new_syntax

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")

OPTIONS = HTCondorOptions(poll_interval=0.05, slots=8)


@pytest.fixture
def condor() -> Iterator[FakeHTCondor]:
    fake = FakeHTCondor()
    yield fake
    fake.schedd.shutdown()


def make(condor: FakeHTCondor, tmp_path: Path, **kw: object) -> HTCondorExecutor:
    options = OPTIONS.model_copy(update=kw)
    return HTCondorExecutor(tmp_path / "logs", options, bindings=condor, namespace="test")


class TestHTCondorContract(ExecutorContract):
    requested = Resources(cores=2, memory_mb=1500, gpus=1, walltime_s=600.0, queue="longlunch")

    @pytest.fixture
    def executor(self, condor: FakeHTCondor, tmp_path: Path) -> Iterator[HTCondorExecutor]:
        ex = make(condor, tmp_path)
        yield ex
        ex.close()

    @pytest.fixture
    def reopen(self, condor: FakeHTCondor, tmp_path: Path) -> Iterator[Reopen]:
        made: list[HTCondorExecutor] = []

        def again(old: Executor) -> Executor:
            old.close()
            made.append(make(condor, tmp_path))
            return made[-1]

        yield again
        for ex in made:
            ex.close()

    def observed_resources(self, executor: Executor, key: str) -> Resources | None:
        assert isinstance(executor, HTCondorExecutor)
        fake: FakeHTCondor = executor._htcondor
        (ad,) = [a for a in fake.schedd.submitted if a["OrchidKey"] == key]
        return Resources(
            cores=ad["RequestCpus"],
            memory_mb=ad["RequestMemory"],
            gpus=ad["RequestGpus"],
            walltime_s=float(ad["AllowedJobDuration"]),
            queue=ad["JobFlavour"],
        )


@pytest.mark.parametrize(
    "argv",
    [
        ["plain", "two words", "it's", 'say "hi"', "", "$HOME", "$(DOLLAR)", "a\tb", "''"],
        ["-c", "import sys; print(sys.argv)"],
    ],
)
def test_arguments_survive_the_submit_language(argv: list[str]) -> None:
    assert parse_new_syntax(expand(condor_arguments(argv), {})) == argv


def test_environment_survives_the_submit_language() -> None:
    env = {"A": "1", "B": "x y", "C": 'it\'s "q"', "D": "", "E": "${HOME}"}
    parsed = parse_new_syntax(expand(condor_environment(env), {}))
    assert dict(p.split("=", 1) for p in parsed) == env


def test_a_batch_is_one_cluster(condor: FakeHTCondor, tmp_path: Path) -> None:
    ex = make(condor, tmp_path)
    try:
        ex.submit([spec(i, python("print({i})".replace("{i}", str(i)))) for i in range(1, 5)])
        done = finals(wait_for(ex, 4))
        assert {u.result for u in done.values()} == {1, 2, 3, 4}
        assert condor.schedd.calls.count("submit") == 1
        assert {a["ClusterId"] for a in condor.schedd.submitted} == {100}
    finally:
        ex.close()


def test_an_unreachable_schedd_is_a_clear_error(tmp_path: Path) -> None:
    class Broken(FakeHTCondor):
        def Schedd(self, location: object = None) -> object:
            raise RuntimeError("Unable to locate local daemon")

    with pytest.raises(ConfigError, match="cannot reach the HTCondor schedd"):
        HTCondorExecutor(tmp_path, OPTIONS, bindings=Broken())
