"""What the panda executor sends PanDA and how it reads PanDA's records (no server here;
the real one is in test_panda_real.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from orchid.executors._panda_api import (
    PandaOptions,
    failure,
    file_message,
    pseudo_input,
    result_of,
    task_params,
)
from orchid.executors.base import Resources
from tests.executors.contract import python, spec


def desc(**kw: Any) -> Any:
    base = {
        "jobStatus": "failed",
        "transExitCode": None,
        "pilotErrorCode": 0,
        "exeErrorDiag": None,
        "pilotErrorDiag": None,
        "taskBufferErrorDiag": None,
        "supErrorDiag": None,
    }
    return SimpleNamespace(**{**base, **kw})


def test_failure_reasons_from_what_the_server_stores() -> None:
    job = spec(1, python("pass"))
    timed = spec(2, python("pass"), resources=Resources(walltime_s=60))
    assert failure(desc(transExitCode=3, exeErrorDiag="a | disk full"), job) == (
        "exit code 3: a | disk full"
    )
    assert failure(desc(pilotErrorCode=1144, pilotErrorDiag="tobekilled"), job) == (
        "cancelled in PanDA"
    )
    assert failure(desc(jobStatus="cancelled"), job) == "cancelled in PanDA"
    assert failure(desc(pilotErrorCode=1213, pilotErrorDiag="max time"), timed).startswith(
        "walltime of 60s exceeded"
    )
    assert failure(desc(pilotErrorCode=1008, pilotErrorDiag="no space"), job) == (
        "pilot error 1008: no space"
    )
    assert failure(desc(), job) == "PanDA job failed"


def test_the_result_is_the_job_reports_orchid_key() -> None:
    assert result_of('{"orchid_result": [1, {"a": null}]}') == ([1, {"a": None}], None)
    assert result_of('{"orchid_result": null}') == (None, None)
    assert result_of('{"someone": "else"}') == (None, None)  # a job report without ours
    assert result_of(None) == (None, None) and result_of("NULL") == (None, None)
    value, error = result_of("{not json")
    assert value is None and error and "not valid JSON" in error


def test_held_tasks_wait_for_their_files_and_carry_the_resources() -> None:
    opts = PandaOptions(url="https://panda.example.org:25443/server/panda", cloud="US", site="Q")
    res = Resources(cores=2, memory_mb=2000, walltime_s=90.5)
    held = task_params(
        "ns.1.w.3",
        ["j1.1", "j1.2"],
        res,
        opts,
        trans_path="https://x/cache/w.py",
        prefix="p",
        held=True,
    )
    assert held["inputPreStaging"] is True and held["pfnList"] == ["j1.1", "j1.2"]
    assert (held["nFiles"], held["nFilesPerJob"], held["maxAttempt"]) == (2, 1, 1)
    assert (held["site"], held["cloud"], held["coreCount"], held["ramCount"]) == (
        "Q",
        "US",
        2,
        2000,
    )
    assert held["baseWalltime"] == held["walltime"] == 90  # round(90.5): banker's rounding
    assert held["jobParameters"][0]["value"] == "--cache https://panda.example.org:25443 --prefix p"
    free = task_params(
        "t", ["j1.1"], Resources(queue="GPUQ"), opts, trans_path="u", prefix="p", held=False
    )
    assert "inputPreStaging" not in free and free["site"] == "GPUQ" and "walltime" not in free


def test_release_messages_are_idds_file_processing_messages() -> None:
    assert file_message(12, {"j1.1": "Available", "j2.1": "Missing"}) == {
        "msg_type": "file_processing",
        "workload_id": 12,
        "relation_type": "input",
        "files": [
            {"scope": "pseudo_dataset", "name": "j1.1", "status": "Available"},
            {"scope": "pseudo_dataset", "name": "j2.1", "status": "Missing"},
        ],
    }


def test_a_jobs_file_is_found_without_jedis_prefix() -> None:
    files = [
        SimpleNamespace(type="log", lfn="x.log.tgz"),
        SimpleNamespace(type="pseudo_input", lfn="000003:j7.2"),
    ]
    assert pseudo_input(SimpleNamespace(Files=files)) == "j7.2"
    assert (
        pseudo_input(SimpleNamespace(Files=[], jobParameters="--cache u --prefix p j8.1")) == "j8.1"
    )
