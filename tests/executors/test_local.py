"""The local executor: the executor contract, then what only a local process pool does.

Jobs are short ``sys.executable`` processes; waits are generous deadlines (see
``contract.wait_for``), never assertions on how long something took.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchid.core.placeholders import render_command
from orchid.errors import ConfigError, ExecutorError
from orchid.executors.base import JobUpdate, Payload, Resources
from orchid.executors.local import LocalExecutor
from tests import waiting
from tests.executors.contract import (
    DEADLINE_S,
    NOOP,
    SLEEP_LONG,
    ExecutorContract,
    finals,
    gate_job,
    python,
    spec,
    wait_for,
    wait_for_state,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")

MakeExecutor = Callable[..., LocalExecutor]


class TestLocalContract(ExecutorContract):
    @pytest.fixture
    def executor(self, tmp_path: Path) -> Iterator[LocalExecutor]:
        ex = LocalExecutor(workers=4, log_dir=tmp_path / "logs")
        yield ex
        ex.close()


@pytest.fixture
def make(tmp_path: Path) -> Iterator[MakeExecutor]:
    """Build LocalExecutors logging under ``tmp_path/logs``; all are closed afterwards."""
    made: list[LocalExecutor] = []

    def factory(workers: int = 2, **kwargs: Any) -> LocalExecutor:
        ex = LocalExecutor(workers, tmp_path / "logs", **kwargs)
        made.append(ex)
        return ex

    yield factory
    for ex in made:
        ex.close()


def run_one(
    ex: LocalExecutor, payload: Payload, args: dict[str, Any] | None = None, **kwargs: Any
) -> JobUpdate:
    """Submit one job and return its final update."""
    job = spec(1, payload, args, **kwargs)
    ex.submit([job])
    return finals(wait_for(ex, 1))[job.key]


# --- argv templates -------------------------------------------------------------------


def test_render_command_substitutes_args_and_leaves_other_braces() -> None:
    args = {"name": "x y", "n": 3, "cfg": {"a": 1}, "items": [1, 2], "odd-key": "ok"}
    template = [
        "{name}",
        "--n={n}",
        "{{literal}}",
        "${HOME}",
        "{cfg}",
        "{missing}",
        "{items}",
        "{odd-key}",
        "awk '{print $1}'",
        "{}",
        "a}}b",
    ]
    assert render_command(template, args) == [
        "x y",
        "--n=3",
        "{literal}",
        "${HOME}",
        '{"a": 1}',
        "{missing}",
        "[1, 2]",
        "ok",
        "awk '{print $1}'",
        "{}",
        "a}b",
    ]


def test_command_gets_rendered_argv(make: MakeExecutor) -> None:
    payload = python(
        "import json, sys; print(json.dumps(sys.argv[1:]))", "{name}", "{{x}}", "${HOME}", "{cfg}"
    )
    update = run_one(make(), payload, {"name": "job 1", "cfg": {"k": [1]}})
    assert update.result == ["job 1", "{x}", "${HOME}", '{"k": [1]}']


def test_shell_is_used_only_when_the_argv_asks(make: MakeExecutor) -> None:
    ex = make()
    update = run_one(
        ex, Payload(kind="command", command=("sh", "-c", "echo ${HOME:+set} {n}")), {"n": 5}
    )
    assert update.state == "succeeded"
    assert Path(update.log_uri or "").read_text().split() == ["set", "5"]


# --- environment ------------------------------------------------------------------------


def test_environment_workdir_and_python_path(make: MakeExecutor, tmp_path: Path) -> None:
    workdir = tmp_path / "wd"
    workdir.mkdir()
    code = textwrap.dedent("""
        import json, os
        names = ["ORCHID_JOB_KEY", "ORCHID_JOB_ID", "ORCHID_ATTEMPT", "ORCHID_WORK",
                 "ORCHID_ARGS", "ORCHID_RESULT_FILE", "PYTHONPATH", "FOO", "PATH"]
        env = {n: os.environ.get(n) for n in names}
        env["cwd"] = os.getcwd()
        print(json.dumps(env))
    """)
    payload = python(code, env={"FOO": "bar"}, workdir=str(workdir), python_path=("/opt/x",))
    job = spec(7, payload, {"a": 1}, workflow_id=3, attempt=2)
    ex = make()
    ex.submit([job])
    update = finals(wait_for(ex, 1))[job.key]
    env = update.result
    assert env["ORCHID_JOB_KEY"] == "3-7-2"
    assert (env["ORCHID_JOB_ID"], env["ORCHID_ATTEMPT"], env["ORCHID_WORK"]) == ("7", "2", "work")
    assert json.loads(env["ORCHID_ARGS"]) == {"a": 1}
    assert env["ORCHID_RESULT_FILE"] == str(tmp_path / "logs" / "3" / "7.2.result.json")
    assert env["PYTHONPATH"].split(os.pathsep)[0] == "/opt/x"
    assert env["FOO"] == "bar"
    assert env["PATH"] == os.environ.get("PATH")
    assert Path(env["cwd"]).resolve() == workdir.resolve()


# --- results, exit codes and start failures ---------------------------------------------


def test_invalid_result_file_fails_the_job(make: MakeExecutor) -> None:
    code = "import os; open(os.environ['ORCHID_RESULT_FILE'], 'w').write('{not json')"
    update = run_one(make(), python(code))
    assert update.state == "failed"
    assert update.exit_code == 0
    assert update.error is not None and update.error.startswith("result file is not valid JSON:")


def test_killed_by_signal_reports_minus_signal(make: MakeExecutor) -> None:
    update = run_one(make(), python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    assert update.state == "failed"
    assert update.exit_code == -9
    assert update.error == "killed by signal SIGKILL"


MISSING = "/nonexistent/orchid-no-such-program"


@pytest.mark.parametrize(
    ("command", "workdir", "expected"),
    [
        ((MISSING,), None, f"program not found: {MISSING}"),
        (("orchid-no-such-program", "arg"), None, "program not found: orchid-no-such-program"),
        ((sys.executable, "-c", "pass"), "/nonexistent/dir", "workdir not found: /nonexistent/dir"),
        ((), None, "empty command"),
    ],
)
def test_start_failures_are_reported_not_raised(
    make: MakeExecutor, command: tuple[str, ...], workdir: str | None, expected: str
) -> None:
    ex = make()
    update = run_one(ex, Payload(kind="command", command=command, workdir=workdir))
    assert update.state == "failed"
    assert update.error == expected
    assert update.exit_code is None
    assert ex.capacity() == 2


def test_not_executable_program(make: MakeExecutor, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    update = run_one(make(), Payload(kind="command", command=(str(script),)))
    assert update.state == "failed"
    assert update.error == f"program not executable: {script}"


def test_noop_runs_no_process(make: MakeExecutor, tmp_path: Path) -> None:
    ex = make()
    ex.submit([spec(1, NOOP)])
    assert ex.capacity() == 2
    (update,) = ex.poll()  # queued by submit itself
    assert update.state == "succeeded" and update.exit_code == 0
    assert not (tmp_path / "logs").exists()


# --- logs and usage ------------------------------------------------------------------------


def test_logs_are_where_log_uri_says(make: MakeExecutor, tmp_path: Path) -> None:
    code = "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"
    ex = make()
    job = spec(5, python(code), workflow_id=9, attempt=3)
    ex.submit([job])
    updates = wait_for(ex, 1)
    running = [u for u in updates if u.state == "running"]
    final = finals(updates)[job.key]
    out = tmp_path / "logs" / "9" / "5.3.out"
    assert final.log_uri == str(out)
    assert [u.log_uri for u in running] == [str(out)]
    assert out.read_text() == "to stdout\n"
    assert out.with_suffix(".err").read_text() == "to stderr\n"


def test_usage_has_cpu_and_memory(make: MakeExecutor) -> None:
    code = "data = b'x' * (32 * 1024 * 1024); print(sum(i * i for i in range(200_000)))"
    update = run_one(make(), python(code))
    assert update.state == "succeeded"
    usage = update.usage
    assert usage is not None
    assert usage.wall_s > 0
    assert usage.cpu_user_s + usage.cpu_system_s > 0
    assert usage.max_rss_kb > 32 * 1024


# --- function payloads ------------------------------------------------------------------------

USER_MODULE = """
import os, sys

def add(x, y=2):
    return {"sum": x + y, "pid": os.getpid()}

def boom(message):
    raise ValueError(message)

def not_json():
    return {1, 2}

def leave(code):
    sys.exit(code)

def crash():
    os.kill(os.getpid(), 11)

class Tools:
    @staticmethod
    def double(n):
        return 2 * n
"""


@pytest.fixture
def user_module(tmp_path: Path) -> Path:
    """A directory holding ``orchid_userjobs.py``, to put on python_path or use as workdir."""
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "orchid_userjobs.py").write_text(USER_MODULE)
    return folder


def function(target: str, folder: Path | None = None, **kwargs: Any) -> Payload:
    path = (str(folder),) if folder else ()
    return Payload(kind="function", function=target, python_path=path, **kwargs)


def test_function_returns_its_result(make: MakeExecutor, user_module: Path) -> None:
    ex = make()
    ex.submit(
        [
            spec(1, function("orchid_userjobs:add", user_module), {"x": 40}),
            spec(2, function("orchid_userjobs:Tools.double", workdir=str(user_module)), {"n": 21}),
        ]
    )
    done = finals(wait_for(ex, 2))
    first = done["1-1-1"]
    assert first.state == "succeeded", first.error
    assert first.result["sum"] == 42
    assert first.result["pid"] != os.getpid()  # it ran in a process of its own
    assert done["1-2-1"].result == 42  # imported from the workdir


def test_function_exception_fails_with_traceback(make: MakeExecutor, user_module: Path) -> None:
    update = run_one(make(), function("orchid_userjobs:boom", user_module), {"message": "bad x"})
    assert update.state == "failed"
    assert update.exit_code == 1
    assert update.error == "exit code 1: ValueError: bad x"
    err = Path(update.log_uri or "").with_suffix(".err").read_text()
    assert "Traceback (most recent call last)" in err and "orchid_userjobs.py" in err


def test_function_result_must_be_json(make: MakeExecutor, user_module: Path) -> None:
    update = run_one(make(), function("orchid_userjobs:not_json", user_module))
    assert update.state == "failed"
    assert update.error is not None
    assert "return value of orchid_userjobs:not_json is not JSON-serialisable" in update.error
    assert "set" in update.error


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("orchid_no_such:f", ["module 'orchid_no_such' not found", "workdir or python_path"]),
        ("orchid_userjobs:missing", ["function 'missing' not found in module 'orchid_userjobs'"]),
        ("orchid_userjobs", ["expected 'package.module:function'"]),
    ],
)
def test_function_not_found_says_what(
    make: MakeExecutor, user_module: Path, target: str, expected: list[str]
) -> None:
    update = run_one(make(), function(target, user_module))
    assert update.state == "failed"
    assert update.exit_code == 2
    for fragment in expected:
        assert update.error is not None and fragment in update.error


def test_function_exit_and_crash_do_not_hurt_the_agent(
    make: MakeExecutor, user_module: Path
) -> None:
    ex = make()
    ex.submit(
        [
            spec(1, function("orchid_userjobs:leave", user_module), {"code": 4}),
            spec(2, function("orchid_userjobs:crash", user_module)),
        ]
    )
    done = finals(wait_for(ex, 2))
    assert (done["1-1-1"].state, done["1-1-1"].exit_code) == ("failed", 4)
    assert (done["1-2-1"].state, done["1-2-1"].exit_code) == ("failed", -11)
    assert done["1-2-1"].error == "killed by signal SIGSEGV"


# --- concurrency, capacity, wake-ups ------------------------------------------------------------


def test_at_most_workers_jobs_run_at_once(make: MakeExecutor, tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import pathlib, sys, time
        start = time.monotonic()
        time.sleep(0.2)
        pathlib.Path(sys.argv[1]).write_text(f"{start} {time.monotonic()}")
    """)
    ex = make(workers=2)
    stamps = [tmp_path / f"stamp{i}" for i in range(6)]
    ex.submit([spec(i, python(code, str(stamp))) for i, stamp in enumerate(stamps, start=1)])
    assert ex.capacity() == 0
    done = finals(wait_for(ex, len(stamps)))
    assert {u.state for u in done.values()} == {"succeeded"}
    events: list[tuple[float, int]] = []
    for stamp in stamps:
        start, end = map(float, stamp.read_text().split())
        events += [(start, 1), (end, -1)]
    running = peak = 0
    for _, step in sorted(events):  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    assert peak <= 2
    assert ex.capacity() == 2


def test_capacity_never_negative(make: MakeExecutor, tmp_path: Path) -> None:
    ex = make(workers=2)
    gate = tmp_path / "gate"
    ex.submit([spec(i, gate_job(gate)) for i in range(1, 6)])
    assert ex.capacity() == 0
    gate.touch()
    wait_for(ex, 5)
    assert ex.capacity() == 2


def test_wake_is_called_from_workers(tmp_path: Path) -> None:
    woken = threading.Event()
    ex = LocalExecutor(1, tmp_path / "logs", wake=woken.set, clock=lambda: 7.0)
    try:
        ex.submit([spec(1, python("pass"))])
        assert woken.wait(DEADLINE_S)
        updates = wait_for(ex, 1)
        assert {u.at for u in updates} == {7.0}
    finally:
        ex.close()


def test_a_failing_wake_does_not_lose_updates(make: MakeExecutor) -> None:
    def bad_wake() -> None:
        raise RuntimeError("carrier gone")

    update = run_one(make(wake=bad_wake), python("print(1)"))
    assert update.result == 1


def test_duplicate_key_runs_once(make: MakeExecutor, tmp_path: Path) -> None:
    ex = make(workers=2)
    gate = tmp_path / "gate"
    job = spec(1, gate_job(gate))
    ex.submit([job, job])
    ex.submit([job])
    assert ex.capacity() == 1
    gate.touch()
    updates = wait_for(ex, 1)
    ex.close()
    finals([*updates, *ex.poll()])  # asserts one final update per key


def test_bad_worker_count() -> None:
    with pytest.raises(ConfigError):
        LocalExecutor(0, Path("unused"))


# --- cancel, walltime, close --------------------------------------------------------------------


def test_cancel_queued_job_drops_it_silently(make: MakeExecutor, tmp_path: Path) -> None:
    ex = make(workers=1)
    gate, marker = tmp_path / "gate", tmp_path / "marker"
    first = spec(1, gate_job(gate))
    second = spec(2, python("import sys; open(sys.argv[1], 'w').close()", str(marker)))
    ex.submit([first, second])
    ex.cancel([second.key])
    assert ex.capacity() == 0  # only the first one still counts
    gate.touch()
    updates = wait_for(ex, 1)
    ex.close()
    updates += ex.poll()
    assert {u.key for u in updates} == {first.key}
    assert not marker.exists()


def test_cancel_escalates_to_sigkill(make: MakeExecutor, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "open(sys.argv[1], 'w').close(); time.sleep(60)"
    )
    ex = make(kill_grace_s=0.2)
    job = spec(1, python(code, str(ready)))
    ex.submit([job])
    waiting.wait_for("the job to ignore SIGTERM", ready.exists, DEADLINE_S, 0.01)
    ex.cancel([job.key])
    update = finals(wait_for(ex, 1))[job.key]
    assert (update.state, update.error, update.exit_code) == ("failed", "cancelled", -9)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_cancel_stops_the_whole_process_group(make: MakeExecutor, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = textwrap.dedent("""
        import pathlib, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        pathlib.Path(sys.argv[1]).write_text(str(child.pid))
        time.sleep(60)
    """)
    ex = make()
    job = spec(1, python(code, str(pid_file)))
    ex.submit([job])
    waiting.wait_for(
        "the grandchild", lambda: pid_file.exists() and pid_file.read_text() != "", DEADLINE_S, 0.01
    )
    grandchild = int(pid_file.read_text())
    assert _alive(grandchild)
    ex.cancel([job.key])
    assert finals(wait_for(ex, 1))[job.key].error == "cancelled"
    waiting.wait_for("the grandchild to die", lambda: not _alive(grandchild), DEADLINE_S, 0.01)


def test_walltime_is_enforced(make: MakeExecutor) -> None:
    ex = make()
    update = run_one(ex, SLEEP_LONG, resources=Resources(walltime_s=0.3))
    assert update.state == "failed"
    assert update.error == "walltime of 0.3s exceeded"
    assert update.exit_code == -signal.SIGTERM


def test_walltime_not_hit_by_quick_job(make: MakeExecutor) -> None:
    update = run_one(make(), python("print(1)"), resources=Resources(walltime_s=30))
    assert (update.state, update.result) == ("succeeded", 1)


def test_close_cancels_running_jobs(make: MakeExecutor) -> None:
    ex = make()
    job = spec(1, SLEEP_LONG)
    ex.submit([job, spec(2, SLEEP_LONG), spec(3, SLEEP_LONG)])  # the third is queued
    updates: list[JobUpdate] = []
    wait_for_state(ex, job.key, "running", updates)
    ex.close()
    updates += ex.poll()
    done = finals(updates)
    assert done[job.key].error == "cancelled"
    assert "1-3-1" not in done
    assert ex.capacity() == 2
    with pytest.raises(ExecutorError):
        ex.submit([spec(4, NOOP)])
    ex.close()


def test_args_file_progress_file_and_args_in_env_values(make: MakeExecutor, tmp_path: Path) -> None:
    """The arguments also come as a JSON file (the only way for large ones), env values take
    ``{arg}``, and a job may append intermediate values to its progress file."""
    code = textwrap.dedent("""
        import json, os
        with open(os.environ["ORCHID_ARGS_FILE"]) as f:
            args = json.load(f)
        with open(os.environ["ORCHID_PROGRESS_FILE"], "a") as f:
            f.write('{"step": 1, "value": 0.5}\\n')
        print(json.dumps({"n": len(args["big"]), "lr": os.environ["LR"],
                          "in_env": "ORCHID_ARGS" in os.environ}))
    """)
    payload = python(code, env={"LR": "{lr}"})
    small = spec(1, payload, {"lr": 0.01, "big": "x"}, workflow_id=4)
    large = spec(2, payload, {"lr": 0.02, "big": "x" * 200_000}, workflow_id=4)
    ex = make()
    ex.submit([small, large])
    got = finals(wait_for(ex, 2))
    assert got[small.key].result == {"n": 1, "lr": "0.01", "in_env": True}
    assert got[large.key].result == {"n": 200_000, "lr": "0.02", "in_env": False}
    progress = tmp_path / "logs" / "4" / "1.1.progress.jsonl"
    assert progress.read_text() == '{"step": 1, "value": 0.5}\n'
