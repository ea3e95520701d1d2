"""The contract every executor must honour, as a reusable test base class.

Subclass :class:`ExecutorContract` in a ``test_*.py`` module and give it an ``executor``
fixture that yields a fresh executor (and closes it afterwards)::

    class TestMyContract(ExecutorContract):
        @pytest.fixture
        def executor(self, tmp_path: Path) -> Iterator[Executor]:
            ex = MyExecutor(...)
            yield ex
            ex.close()

Executors that do not really run commands (``null``) set ``runs_commands = False``; the
tests that need a real process are then skipped. Command jobs use ``sys.executable`` so
they work wherever the tests run. No test asserts a wall-clock duration: waits are
generous deadlines that only fail when something is truly stuck.

Two more hooks, for what not every workload system has:

- ``reopen``: a fixture returning a function that drops an executor the way a crash of
  its agent would (nothing cancelled) and connects a new one to the same backend. Jobs of
  executors that provide it outlive their agent: the new executor, given the same specs,
  re-attaches to them by their deterministic keys instead of running them again. Without
  it, the restart tests are skipped (local jobs end with their agent; the engine runs
  them again).
- ``observed_resources(executor, key)``: the resources the backend was asked for, as it
  recorded them; None (the default) skips the resource-request test.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from orchid.executors.base import Executor, JobSpec, JobUpdate, Payload, Resources
from tests import waiting

FINAL_STATES = ("succeeded", "failed")
DEADLINE_S = 60.0


def spec(
    job_id: int,
    payload: Payload,
    args: Mapping[str, Any] | None = None,
    *,
    workflow_id: int = 1,
    attempt: int = 1,
    resources: Resources | None = None,
) -> JobSpec:
    """A JobSpec with a deterministic key and throw-away names."""
    return JobSpec(
        key=JobSpec.make_key(workflow_id, job_id, attempt),
        workflow_id=workflow_id,
        job_id=job_id,
        attempt=attempt,
        work_name="work",
        job_name=f"job{job_id}",
        payload=payload,
        args=dict(args or {}),
        resources=resources or Resources(),
    )


def python(code: str, *extra: str, **payload: Any) -> Payload:
    """A command payload running ``code`` with this interpreter; ``extra`` are more argv items."""
    return Payload(kind="command", command=(sys.executable, "-c", code, *extra), **payload)


def marked_gate_job(gate: Path, marks: Path) -> Payload:
    """A gate job that first appends its key to the file ``marks``: one line per run."""
    code = (
        "import os, sys, time\n"
        "with open(sys.argv[2], 'a') as f: f.write(os.environ['ORCHID_JOB_KEY'] + '\\n')\n"
        "end = time.monotonic() + 60\n"
        "while not os.path.exists(sys.argv[1]):\n"
        "    if time.monotonic() > end: sys.exit(99)\n"
        "    time.sleep(0.01)\n"
    )
    return python(code, str(gate), str(marks))


def gate_job(gate: Path) -> Payload:
    """A command that waits until the file ``gate`` exists (gives up after a minute)."""
    code = (
        "import os, sys, time\n"
        "end = time.monotonic() + 60\n"
        "while not os.path.exists(sys.argv[1]):\n"
        "    if time.monotonic() > end: sys.exit(99)\n"
        "    time.sleep(0.01)\n"
    )
    return python(code, str(gate))


NOOP = Payload(kind="noop")
SLEEP_LONG = python("import time; time.sleep(60)")


def finals(updates: Iterable[JobUpdate]) -> dict[str, JobUpdate]:
    """The final update of each key (asserting there is only one)."""
    counts = Counter(u.key for u in updates if u.state in FINAL_STATES)
    assert all(n == 1 for n in counts.values()), f"more than one final update: {counts}"
    return {u.key: u for u in updates if u.state in FINAL_STATES}


def wait_for(
    executor: Executor,
    n_final: int,
    timeout: float = DEADLINE_S,
    *,
    into: list[JobUpdate] | None = None,
) -> list[JobUpdate]:
    """Poll until ``n_final`` final updates arrived (counting those already in ``into``)."""
    updates = into if into is not None else []

    def enough() -> bool:
        if sum(u.state in FINAL_STATES for u in updates) >= n_final:
            return True
        updates.extend(executor.poll())
        return False

    waiting.wait_for(lambda: f"{n_final} final updates (got {updates})", enough, timeout, 0.005)
    return updates


def wait_for_state(
    executor: Executor, key: str, state: str, into: list[JobUpdate], timeout: float = DEADLINE_S
) -> JobUpdate:
    """Poll until ``key`` reports ``state``; every update seen is appended to ``into``."""

    def seen() -> JobUpdate | None:
        for update in into:
            if update.key == key and update.state == state:
                return update
        into.extend(executor.poll())
        return None

    return waiting.wait_for(lambda: f"{key} to be {state} (got {into})", seen, timeout, 0.005)


def commands(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a contract test as needing real processes (skipped when ``runs_commands`` is off)."""
    test.needs_commands = True  # type: ignore[attr-defined]
    return test


Reopen = Callable[[Executor], Executor]


class ExecutorContract:
    """Tests any executor must pass; subclasses provide the ``executor`` fixture."""

    runs_commands = True
    local_logs = True  # log_uri names a file on this host (else: a link to the backend's)

    @pytest.fixture
    def executor(self) -> Executor:  # pragma: no cover - always overridden
        raise NotImplementedError("subclasses provide the executor fixture")

    @pytest.fixture
    def reopen(self) -> Reopen:
        pytest.skip(f"{type(self).__name__}: its jobs do not outlive their agent")

    def observed_resources(self, executor: Executor, key: str) -> Resources | None:
        """What the backend was asked to give job ``key``; None when it keeps no record."""
        return None

    requested = Resources(cores=2, memory_mb=1500, gpus=1, walltime_s=600.0, queue=None)
    """What the resource-request test asks for (subclasses set a queue their backend knows)."""

    @pytest.fixture(autouse=True)
    def _skip_command_tests(self, request: pytest.FixtureRequest) -> None:
        if getattr(request.function, "needs_commands", False) and not self.runs_commands:
            pytest.skip(f"{type(self).__name__} does not run commands")

    # --- every executor ------------------------------------------------------------------

    def test_is_an_executor(self, executor: Executor) -> None:
        assert isinstance(executor, Executor)
        assert isinstance(executor.name, str) and executor.name

    def test_noop_batch_each_succeeds_once(self, executor: Executor) -> None:
        jobs = [spec(i, NOOP) for i in range(1, 6)]
        executor.submit(jobs)
        done = finals(wait_for(executor, len(jobs)))
        assert set(done) == {j.key for j in jobs}
        for job in jobs:
            update = done[job.key]
            assert update.state == "succeeded"
            assert (update.job_id, update.attempt) == (job.job_id, job.attempt)
            assert isinstance(update.at, float)

    def test_poll_on_idle_executor_is_empty(self, executor: Executor) -> None:
        assert executor.poll() == []
        assert executor.poll() == []

    def test_capacity_is_never_negative_and_recovers(self, executor: Executor) -> None:
        initial = executor.capacity()
        assert initial > 0
        executor.submit([spec(i, NOOP) for i in range(1, 4)])
        assert executor.capacity() >= 0
        wait_for(executor, 3)
        assert executor.capacity() == initial

    def test_cancel_unknown_keys_is_ignored(self, executor: Executor) -> None:
        executor.cancel(["no-such-key", "9-9-9"])
        assert executor.poll() == []

    def test_close_is_idempotent(self, executor: Executor) -> None:
        executor.close()
        executor.close()

    # --- executors that run commands ------------------------------------------------------

    @commands
    def test_command_batch_reports_exit_codes(self, executor: Executor) -> None:
        codes = [0, 1, 0, 3, 0, 42]
        jobs = [
            spec(i, python("import sys; sys.exit(int(sys.argv[1]))", "{code}"), {"code": code})
            for i, code in enumerate(codes, start=1)
        ]
        executor.submit(jobs)
        updates = wait_for(executor, len(jobs))
        done = finals(updates)
        assert set(done) == {j.key for j in jobs}
        for job, code in zip(jobs, codes, strict=True):
            update = done[job.key]
            assert update.exit_code == code
            assert update.state == ("succeeded" if code == 0 else "failed")
            if code:
                assert update.error is not None and f"exit code {code}" in update.error
        for job in jobs:  # a running update, if any, comes before the final one
            states = [u.state for u in updates if u.key == job.key]
            assert states[-1] in FINAL_STATES and states.count("running") <= 1
        executor.close()
        assert not [u for u in executor.poll() if u.state in FINAL_STATES]

    @commands
    def test_result_from_result_file(self, executor: Executor) -> None:
        code = (
            "import json, os\n"
            "print('noise')\n"
            "with open(os.environ['ORCHID_RESULT_FILE'], 'w') as f:\n"
            "    json.dump({'n': 7, 'names': ['a', 'b']}, f)\n"
        )
        executor.submit([spec(1, python(code))])
        (update,) = finals(wait_for(executor, 1)).values()
        assert update.state == "succeeded", update.error
        assert update.result == {"n": 7, "names": ["a", "b"]}

    @commands
    def test_result_from_last_stdout_line(self, executor: Executor) -> None:
        code = "import json; print('hello'); print(json.dumps([1, 2, {'x': None}])); print()"
        plain = "print('just text')"
        executor.submit(
            [spec(1, python(code)), spec(2, python(plain)), spec(3, python("print(5)"))]
        )
        done = finals(wait_for(executor, 3))
        assert done["1-1-1"].result == [1, 2, {"x": None}]
        assert done["1-2-1"].state == "succeeded" and done["1-2-1"].result is None
        assert done["1-3-1"].result == 5

    @commands
    def test_failure_carries_stderr(self, executor: Executor) -> None:
        code = "import sys; print('a\\ndisk full', file=sys.stderr); sys.exit(3)"
        executor.submit([spec(1, python(code))])
        (update,) = finals(wait_for(executor, 1)).values()
        assert update.state == "failed"
        assert update.exit_code == 3
        assert update.error is not None
        assert "exit code 3" in update.error and "disk full" in update.error

    @commands
    def test_capacity_counts_unfinished_jobs(self, executor: Executor, tmp_path: Path) -> None:
        initial = executor.capacity()
        gate = tmp_path / "gate"
        executor.submit([spec(1, gate_job(gate)), spec(2, gate_job(gate))])
        assert executor.capacity() == max(0, initial - 2)
        gate.touch()
        done = finals(wait_for(executor, 2))
        assert {u.state for u in done.values()} == {"succeeded"}
        assert executor.capacity() == initial

    @commands
    def test_poll_does_not_wait_for_jobs(self, executor: Executor, tmp_path: Path) -> None:
        gate = tmp_path / "gate"
        executor.submit([spec(1, gate_job(gate))])
        updates: list[JobUpdate] = []
        for _ in range(20):  # the job cannot end before the gate opens, so poll returned early
            updates.extend(executor.poll())
        assert not [u for u in updates if u.state in FINAL_STATES]
        gate.touch()
        wait_for(executor, 1, into=updates)

    @commands
    def test_cancel_running_job(self, executor: Executor) -> None:
        job = spec(1, SLEEP_LONG)
        executor.submit([job])
        updates: list[JobUpdate] = []
        wait_for_state(executor, job.key, "running", updates)
        executor.cancel([job.key])
        (update,) = finals(wait_for(executor, 1, into=updates)).values()
        assert update.state == "failed"
        assert update.error == "cancelled"
        executor.cancel([job.key])  # cancelling again is harmless

    @commands
    def test_job_args_are_passed_as_json(self, executor: Executor) -> None:
        code = "import json, os; print(json.dumps(json.loads(os.environ['ORCHID_ARGS'])))"
        args = {"a": 1, "b": [1, "x"], "c": {"d": None}}
        executor.submit([spec(1, python(code), args)])
        (update,) = finals(wait_for(executor, 1)).values()
        assert update.result == json.loads(json.dumps(args))

    @commands
    def test_logs_hold_stdout_and_stderr(self, executor: Executor) -> None:
        code = "import sys; print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(1)"
        executor.submit([spec(1, python(code)), spec(2, python("print('fine')"))])
        done = finals(wait_for(executor, 2))
        for key, text in (("1-1-1", "to stdout"), ("1-2-1", "fine")):
            uri = done[key].log_uri
            assert uri, f"{key} has no log"
            if self.local_logs:
                assert text in Path(uri).read_text()
        if self.local_logs:
            err = Path(done["1-1-1"].log_uri or "").with_suffix(".err")
            assert "to stderr" in err.read_text()

    @commands
    def test_walltime_is_enforced(self, executor: Executor) -> None:
        job = spec(1, SLEEP_LONG, resources=Resources(walltime_s=1.0))
        executor.submit([job])
        (update,) = finals(wait_for(executor, 1)).values()
        assert update.state == "failed"
        assert update.error is not None and "walltime" in update.error

    @commands
    def test_resource_requests_reach_the_backend(self, executor: Executor) -> None:
        wanted = self.requested
        job = spec(1, python("print('ok')"), resources=wanted)
        executor.submit([job])
        (update,) = finals(wait_for(executor, 1)).values()
        assert update.state == "succeeded", update.error
        seen = self.observed_resources(executor, job.key)
        if seen is None:
            pytest.skip(f"{type(self).__name__} keeps no record of resource requests")
        assert seen == wanted, f"asked {wanted}, the backend recorded {seen}"

    @commands
    def test_restart_reattaches_without_duplicates(
        self, executor: Executor, reopen: Reopen, tmp_path: Path
    ) -> None:
        gate, marks = tmp_path / "gate", tmp_path / "marks"
        jobs = [spec(i, marked_gate_job(gate, marks)) for i in range(1, 4)]
        executor.submit(jobs)
        updates: list[JobUpdate] = []
        for job in jobs:  # every job is running on the backend when its agent "crashes"
            wait_for_state(executor, job.key, "running", updates)
        assert not [u for u in updates if u.state in FINAL_STATES]
        again = reopen(executor)
        gate.touch()  # they end while no executor watches them...
        # ...and the new one, handed the same attempts by the carrier that adopts them, finds them
        again.submit([dataclasses.replace(j, adopted=True) for j in jobs])
        done = finals(wait_for(again, len(jobs)))
        assert set(done) == {j.key for j in jobs}
        assert {u.state for u in done.values()} == {"succeeded"}
        ran = marks.read_text().split()
        assert sorted(ran) == sorted(j.key for j in jobs), "a job ran twice"
        again.submit([spec(9, NOOP)])  # and it still takes new work
        assert finals(wait_for(again, 1))["1-9-1"].state == "succeeded"
