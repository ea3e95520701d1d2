"""The local executor's long-lived workers (``reuse_workers``): function jobs behave as in
a process of their own — results, exit codes, tracebacks, crashes, logs, environment,
cancel and walltime — while each slot's interpreter stays from one job to the next."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchid.core.limits import Limits
from orchid.executors import local, registry
from orchid.executors.base import Payload, Resources
from orchid.executors.local import LocalExecutor
from orchid.settings import Settings
from tests import waiting
from tests.executors import test_local
from tests.executors.contract import (
    DEADLINE_S,
    ExecutorContract,
    finals,
    spec,
    wait_for,
    wait_for_state,
)
from tests.executors.test_local import MakeExecutor, function, run_one, user_module

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")

# the function-payload tests of test_local, run again here on reused workers
test_function_returns_its_result = test_local.test_function_returns_its_result
test_function_exception_fails_with_traceback = (
    test_local.test_function_exception_fails_with_traceback
)
test_function_result_must_be_json = test_local.test_function_result_must_be_json
test_function_not_found_says_what = test_local.test_function_not_found_says_what
test_function_exit_and_crash_do_not_hurt_the_agent = (
    test_local.test_function_exit_and_crash_do_not_hurt_the_agent
)
__all__ = ["user_module"]


class TestPooledContract(ExecutorContract):
    @pytest.fixture
    def executor(self, tmp_path: Path) -> Iterator[LocalExecutor]:
        ex = LocalExecutor(workers=4, log_dir=tmp_path / "logs", reuse_workers=True)
        yield ex
        ex.close()


@pytest.fixture
def make(tmp_path: Path) -> Iterator[MakeExecutor]:
    made: list[LocalExecutor] = []

    def factory(workers: int = 2, **kwargs: Any) -> LocalExecutor:
        kwargs.setdefault("reuse_workers", True)
        ex = LocalExecutor(workers, tmp_path / "logs", **kwargs)
        made.append(ex)
        return ex

    yield factory
    for ex in made:
        ex.close()


STATEFUL = """
import os, sys, time

CALLS = []

def count(i):
    CALLS.append(i)
    return {"pid": os.getpid(), "calls": len(CALLS)}

def where(name):
    print("out of", name)
    print("err of", name, file=sys.stderr)
    return {"cwd": os.getcwd(), "var": os.environ.get("ORCHID_TEST_VAR"),
            "job": os.environ["ORCHID_JOB_NAME"]}

def spoil():
    os.environ["ORCHID_TEST_VAR"] = "spoiled"
    os.chdir("/")
    return None

def nap(seconds, marker=None):
    if marker:
        open(marker, "w").close()
    time.sleep(seconds)

def crash():
    os._exit(7)

def args_file(n):
    with open(os.environ["ORCHID_ARGS_FILE"]) as f:
        return {"args": f.read()}

def say(text):
    print(text)

def big(pad, size):
    return "y" * size

def flood(size):
    # the replies pipe is the worker's argv[2]: a job can write into it like any fd it has
    fd = int(sys.argv[2])
    for _ in range(size // 65536 + 1):
        os.write(fd, b"x" * 65536)
    os.write(fd, b"\\n")

def replace_log():
    log = os.environ["ORCHID_RESULT_FILE"].replace(".result.json", ".out")
    os.unlink(log)
    with open(log, "w") as f:
        f.write("a file of its own\\n")
"""


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "stateful"
    folder.mkdir()
    (folder / "orchid_stateful.py").write_text(STATEFUL)
    return folder


def fn(code: Path, name: str, **kwargs: Any) -> Payload:
    return function(f"orchid_stateful:{name}", code, **kwargs)


def test_one_interpreter_runs_job_after_job(make: MakeExecutor, code: Path) -> None:
    ex = make(workers=1)
    ex.submit([spec(i, fn(code, "count"), {"i": i}) for i in range(1, 6)])
    done = finals(wait_for(ex, 5))
    results = [done[f"1-{i}-1"].result for i in range(1, 6)]
    assert {r["pid"] for r in results} != {os.getpid()}
    assert len({r["pid"] for r in results}) == 1  # one worker process for all five
    assert [r["calls"] for r in results] == [1, 2, 3, 4, 5]  # its modules stay loaded


def test_each_job_has_its_own_environment_folder_and_logs(make: MakeExecutor, code: Path) -> None:
    ex = make(workers=1)
    first = spec(1, fn(code, "where", env={"ORCHID_TEST_VAR": "one"}), {"name": "a"})
    spoiler = spec(2, fn(code, "spoil"))
    second = spec(3, fn(code, "where"), {"name": "b"})
    ex.submit([first, spoiler, second])
    done = finals(wait_for(ex, 3))
    a, b = done[first.key], done[second.key]
    assert a.result == {"cwd": os.getcwd(), "var": "one", "job": first.job_name}
    # what a job did to the environment and the current folder is undone for the next
    assert b.result == {"cwd": os.getcwd(), "var": None, "job": second.job_name}
    assert Path(a.log_uri or "").read_text() == "out of a\n"
    assert Path(a.log_uri or "").with_suffix(".err").read_text() == "err of a\n"
    assert Path(b.log_uri or "").read_text() == "out of b\n"


def test_a_job_flooding_the_replies_pipe_fails_and_the_worker_is_replaced(
    make: MakeExecutor, code: Path
) -> None:
    """The agent reads no reply past the room a result may take: the job writing into its
    worker's pipe fails with a message, and the next job runs in a fresh worker."""
    ex = make(workers=1, limits=Limits(result_max_bytes=1000))
    ex.submit([spec(1, fn(code, "count"), {"i": 1}), spec(2, fn(code, "flood"), {"size": 10**6})])
    ex.submit([spec(3, fn(code, "count"), {"i": 3})])
    done = finals(wait_for(ex, 3))
    flooded = done["1-2-1"]
    assert flooded.state == "failed" and "more than 67,536 bytes" in (flooded.error or "")
    before, after = done["1-1-1"].result, done["1-3-1"].result
    assert after["pid"] != before["pid"] and after["calls"] == 1


def test_a_worker_that_dies_is_replaced(make: MakeExecutor, code: Path) -> None:
    ex = make(workers=1)
    ex.submit([spec(1, fn(code, "count"), {"i": 1}), spec(2, fn(code, "crash"))])
    ex.submit([spec(3, fn(code, "count"), {"i": 3})])
    done = finals(wait_for(ex, 3))
    assert (done["1-2-1"].state, done["1-2-1"].exit_code) == ("failed", 7)
    before, after = done["1-1-1"].result, done["1-3-1"].result
    assert after["pid"] != before["pid"] and after["calls"] == 1  # a fresh interpreter


def test_jobs_of_other_code_get_another_worker(
    make: MakeExecutor, code: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "orchid_stateful.py").write_text("def count(i):\n    return {'other': True}\n")
    ex = make(workers=1)
    ex.submit([spec(1, fn(code, "count"), {"i": 1})])
    ex.submit([spec(2, function("orchid_stateful:count", other), {"i": 2})])
    done = finals(wait_for(ex, 2))
    assert done["1-1-1"].result["calls"] == 1
    assert done["1-2-1"].result == {"other": True}  # never the module of the first folder


def test_cancel_stops_the_job_and_the_next_one_runs(
    make: MakeExecutor, code: Path, tmp_path: Path
) -> None:
    ex = make(workers=1)
    marker = tmp_path / "started"
    job = spec(1, fn(code, "nap"), {"seconds": 60, "marker": str(marker)})
    ex.submit([job])
    waiting.wait_for("the job to start", marker.exists, DEADLINE_S, 0.01)
    ex.cancel([job.key])
    assert finals(wait_for(ex, 1))[job.key].error == "cancelled"
    nxt = run_one(ex, fn(code, "count"), {"i": 2})
    assert nxt.state == "succeeded" and nxt.result["calls"] == 1


def test_walltime_kills_the_worker(make: MakeExecutor, code: Path) -> None:
    ex = make(workers=1)
    update = run_one(ex, fn(code, "nap"), {"seconds": 60}, resources=Resources(walltime_s=0.3))
    assert (update.state, update.error) == ("failed", "walltime of 0.3s exceeded")
    assert update.exit_code == -signal.SIGTERM


def test_a_quick_job_is_reported_once_with_its_start(make: MakeExecutor, code: Path) -> None:
    ex = make(workers=1)
    job = spec(1, fn(code, "count"), {"i": 1})
    ex.submit([job])
    updates = wait_for(ex, 1)
    final = finals(updates)[job.key]
    if len(updates) == 1:  # start and end came between two polls: one update
        assert final.started_at is not None and final.started_at <= final.at
    else:
        assert [u.state for u in updates] == ["running", "succeeded"]


def test_prefetch_takes_jobs_ahead_while_jobs_are_quick(
    make: MakeExecutor, code: Path, tmp_path: Path
) -> None:
    ex = make(workers=1, prefetch=3)
    assert ex.capacity() == 1  # no job has ended yet: they may be long
    ex.submit([spec(1, fn(code, "count"), {"i": 1})])
    wait_for(ex, 1)
    assert ex.capacity() == 4  # quick ones: three more wait for the slot
    marker = tmp_path / "m"
    ex.submit([spec(2, fn(code, "nap"), {"seconds": 60, "marker": str(marker)})])
    wait_for_state(ex, "1-2-1", "running", [])
    assert ex.capacity() == 3
    ex.cancel(["1-2-1"])


def test_long_jobs_are_not_taken_ahead(
    make: MakeExecutor, code: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs taken ahead of long ones would wait here while another agent stands idle."""
    monkeypatch.setattr(local, "PREFETCH_QUICK_S", 0.1)
    ex = make(workers=1, prefetch=3)
    ex.submit([spec(1, fn(code, "count"), {"i": 1})])
    wait_for(ex, 1)
    assert ex.capacity() == 4
    ex.submit([spec(i, fn(code, "nap"), {"seconds": 0.4}) for i in (2, 3, 4)])
    wait_for(ex, 3)
    assert ex.capacity() == 1  # the running mean is past 0.1 s: only the free slot


def test_a_worker_serves_one_workflow(make: MakeExecutor, code: Path) -> None:
    """No module state, monkeypatch or stale code passes from one workflow to the next."""
    ex = make(workers=1)
    ex.submit([spec(i, fn(code, "count"), {"i": i}, workflow_id=1) for i in (1, 2)])
    ex.submit([spec(3, fn(code, "count"), {"i": 3}, workflow_id=2)])
    ex.submit([spec(4, fn(code, "count"), {"i": 4}, workflow_id=1)])
    done = finals(wait_for(ex, 4))
    first, second, other, again = (done[key].result for key in ("1-1-1", "1-2-1", "2-3-1", "1-4-1"))
    assert first["pid"] == second["pid"] and second["calls"] == 2  # one workflow: reused
    assert other["pid"] != first["pid"] and other["calls"] == 1  # another: a fresh worker
    assert again["calls"] == 1  # and back: fresh again, nothing of workflow 2 in it


def test_every_attempt_keeps_its_logs_without_a_new_file_per_job(
    make: MakeExecutor, code: Path, tmp_path: Path
) -> None:
    ex = make(workers=1)
    jobs = [
        spec(1, fn(code, "count"), {"i": 1}),
        spec(2, fn(code, "say"), {"text": "hello"}),
        spec(3, fn(code, "count"), {"i": 3}),
        spec(4, fn(code, "replace_log")),
        spec(5, fn(code, "say"), {"text": "again"}),
    ]
    ex.submit(jobs)
    done = finals(wait_for(ex, 5))
    logs = {j.job_id: Path(done[j.key].log_uri or "") for j in jobs}
    assert [logs[i].read_text() for i in (1, 2, 3, 4, 5)] == [
        "",
        "hello\n",
        "",
        "a file of its own\n",
        "again\n",
    ]
    assert all(log.with_suffix(".err").read_text() == "" for log in logs.values())
    # the silent jobs' logs are links to one read-only empty file: no inode of their own
    empty = logs[1].parent / ".empty"
    assert logs[1].stat().st_ino == logs[3].stat().st_ino == empty.stat().st_ino
    assert logs[2].stat().st_ino != logs[5].stat().st_ino
    spares = tmp_path / "logs" / ".spare"
    assert spares.is_dir()
    ex.close()
    assert list(spares.iterdir()) == []  # a worker takes its spares with it


def test_the_args_file_holds_each_jobs_args_while_it_runs(make: MakeExecutor, code: Path) -> None:
    ex = make(workers=1)
    jobs = [spec(i, fn(code, "args_file"), {"n": "x" * i}) for i in (3, 1, 2)]
    ex.submit(jobs)
    done = finals(wait_for(ex, 3))
    assert [done[j.key].result for j in jobs] == [
        {"args": '{"n": "xxx"}'},
        {"args": '{"n": "x"}'},
        {"args": '{"n": "xx"}'},
    ]


def test_a_process_job_never_writes_through_a_shared_empty_log(
    make: MakeExecutor, code: Path, tmp_path: Path
) -> None:
    """The same attempt run again as a process of its own gets new files."""
    pooled = make(workers=1)
    first = run_one(pooled, fn(code, "count"), {"i": 1})
    log = Path(first.log_uri or "")
    assert log.read_text() == "" and (log.parent / ".empty").exists()
    plain = make(workers=1, reuse_workers=False)
    again = run_one(plain, fn(code, "say"), {"text": "now"})
    assert Path(again.log_uri or "") == log and log.read_text() == "now\n"
    assert (log.parent / ".empty").read_text() == ""


def test_a_free_slot_takes_a_job_before_a_busy_worker_queues_it(
    make: MakeExecutor, code: Path, tmp_path: Path
) -> None:
    ex = make(workers=2)
    markers = [tmp_path / "a", tmp_path / "b"]
    ex.submit(
        [
            spec(i, fn(code, "nap"), {"seconds": 60, "marker": str(m)})
            for i, m in (
                (1, markers[0]),
                (2, markers[1]),
            )
        ]
    )
    waiting.wait_for(
        "both jobs to run at once", lambda: all(m.exists() for m in markers), DEADLINE_S, 0.01
    )
    ex.cancel(["1-1-1", "1-2-1"])
    assert {u.error for u in finals(wait_for(ex, 2)).values()} == {"cancelled"}


def test_jobs_waiting_behind_a_crash_run_in_a_new_worker(make: MakeExecutor, code: Path) -> None:
    ex = make(workers=1)
    ex.submit([spec(1, fn(code, "crash")), *[spec(i, fn(code, "count"), {"i": i}) for i in (2, 3)]])
    done = finals(wait_for(ex, 3))
    assert (done["1-1-1"].state, done["1-1-1"].exit_code) == ("failed", 7)
    assert [done[f"1-{i}-1"].state for i in (2, 3)] == ["succeeded", "succeeded"]


def test_a_job_cancelled_while_it_waits_in_the_pipe(
    make: MakeExecutor, code: Path, tmp_path: Path
) -> None:
    ex = make(workers=1)
    marker = tmp_path / "first"
    first = spec(1, fn(code, "nap"), {"seconds": 0.5, "marker": str(marker)})
    queued, last = spec(2, fn(code, "count"), {"i": 2}), spec(3, fn(code, "count"), {"i": 3})
    ex.submit([first, queued, last])
    waiting.wait_for("the first job to start", marker.exists, DEADLINE_S, 0.01)
    # the worker's start report makes the slot take the next jobs into the pipe; on a busy
    # machine that can come after the marker (a job cancelled while still queued here is
    # dropped without an update, as the executor's cancel documents: not this test's case)
    waiting.wait_for(
        "the queued job to be handed to the worker",
        lambda: queued.key not in ex._queued,
        DEADLINE_S,
        0.01,
    )
    ex.cancel([queued.key])
    done = finals(wait_for(ex, 3))
    assert done[first.key].state == "succeeded"
    assert (done[queued.key].state, done[queued.key].error) == ("failed", "cancelled")
    assert done[last.key].state == "succeeded"


def test_quick_jobs_behind_a_long_one_go_to_a_free_slot(make: MakeExecutor, code: Path) -> None:
    """Quick jobs are written ahead to a worker; when one turns out long, the jobs
    waiting behind it in that worker's pipe are recalled by the other, free slot."""
    ex = make(workers=2)
    quick = [spec(i, fn(code, "count"), {"i": i}) for i in range(1, 41)]
    long = spec(41, fn(code, "nap"), {"seconds": 3})
    after = [spec(i, fn(code, "count"), {"i": i}) for i in range(42, 82)]
    ex.submit([*quick, long, *after])
    done = finals(wait_for(ex, 81, timeout=30))
    assert all(u.state == "succeeded" for u in done.values())
    ended = done[long.key].at
    assert max(done[j.key].at for j in after) < ended  # none waited for the long job


def test_big_arguments_and_results_never_stall_the_pipes(make: MakeExecutor, code: Path) -> None:
    """Jobs written ahead never fill the pipe while the worker waits to send a long reply."""
    ex = make(workers=1)
    jobs = [spec(i, fn(code, "big"), {"pad": "x" * 40_000, "size": 200_000}) for i in range(6)]
    ex.submit(jobs)
    done = finals(wait_for(ex, 6, timeout=60))
    assert [len(done[j.key].result) for j in jobs] == [200_000] * 6


def test_a_new_worker_never_writes_through_the_shared_empty_log(
    make: MakeExecutor, code: Path
) -> None:
    """The same attempt run again in a worker with no spare yet gets a log of its own."""
    first = run_one(make(workers=1), fn(code, "count"), {"i": 1})
    log = Path(first.log_uri or "")
    assert log.stat().st_ino == (log.parent / ".empty").stat().st_ino
    again = run_one(make(workers=1), fn(code, "say"), {"text": "loud"})
    assert Path(again.log_uri or "") == log and log.read_text() == "loud\n"
    assert (log.parent / ".empty").read_text() == ""


def test_the_default_settings_give_the_fast_local_executor(code: Path, tmp_path: Path) -> None:
    """What `orchid run` and `orchid agents` build with no settings: long-lived workers
    and quick jobs taken ahead (bench/RESULTS.md's figures are the defaults' figures)."""
    settings = Settings.load(env={"ORCHID_HOME": str(tmp_path / "home")})
    ex = registry.make(settings.executor_config("local"), settings, None, tmp_path / "logs")
    try:
        assert ex.capacity() == settings.workers  # nothing ended yet: no job taken ahead
        ex.submit([spec(i, fn(code, "count"), {"i": i}) for i in (1, 2, 3)])
        done = finals(wait_for(ex, 3))
        assert len({done[f"1-{i}-1"].result["pid"] for i in (1, 2, 3)}) <= settings.workers
        assert ex.capacity() == settings.workers + settings.prefetch > settings.workers
    finally:
        ex.close()
