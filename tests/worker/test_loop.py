"""The worker's own rules, against the in-memory desk: a lost lease stops its job and its
end is never reported; a refused report is sent again without the refused attempts;
stopping gives the running jobs back; an idle worker with ``idle_exit_s`` ends by itself."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchid.executors.base import JobSpec
from orchid.executors.local import LocalExecutor
from orchid.worker import Worker, WorkerOptions
from tests.executors.contract import python, spec
from tests.waiting import wait_for
from tests.worker.memorydesk import MemoryDesk

# writes its pid, then sleeps (a minute at most)
SLEEPER = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"


class Rig:
    def __init__(self, tmp: Path, **options: object) -> None:
        self.tmp = tmp
        self.desk = MemoryDesk(tmp / "server-logs")
        woken = threading.Event()
        self.local = LocalExecutor(2, tmp / "worker-logs", wake=woken.set, kill_grace_s=1.0)
        opts = WorkerOptions(name="w1", poll_s=0.05, **options)  # type: ignore[arg-type]
        self.worker = Worker(self.desk, self.local, tmp / "worker-logs", opts, woken=woken)
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.worker.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.worker.stop()
        if self.thread is not None:
            self.thread.join(30)
            assert not self.thread.is_alive()

    def sleeper(self, job_id: int) -> tuple[JobSpec, Path]:
        pid_file = self.tmp / f"pid{job_id}"
        return spec(job_id, python(SLEEPER, str(pid_file))), pid_file


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.stop()


def gone(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text()), 0)
    except ProcessLookupError:
        return True
    return False


def test_a_lost_lease_stops_its_job_and_its_end_is_never_reported(rig: Rig) -> None:
    job, pid_file = rig.sleeper(1)
    rig.desk.add([job])
    rig.start()
    wait_for("the job to run", lambda: pid_file.exists() and pid_file.read_text())
    with rig.desk.lock:  # its lease ran out and the server ran it again elsewhere
        del rig.desk.held[1, 1]
    wait_for("the worker to drop the job", lambda: rig.worker.held == 0)
    wait_for("the job's process to be stopped", lambda: gone(pid_file))
    rig.stop()
    assert not [u for u in rig.desk.take() if u.state != "running"]


def test_a_refused_report_is_sent_again_without_the_refused_attempts(tmp_path: Path) -> None:
    r = Rig(tmp_path)
    try:
        quick = [spec(1, python("print(1)")), spec(2, python("print(2)"))]
        r.desk.add(quick)
        while r.worker.held < 2:  # driven by hand: both leased before anything is reported
            r.worker.step()
        with r.desk.lock:
            del r.desk.held[1, 1]  # job 1's lease is lost before its end is reported

        def job_2_ended() -> bool:
            r.worker.step()
            return r.worker.held == 0

        wait_for("the worker to settle both jobs", job_2_ended)
        ends = {u.job_id: u for u in r.desk.take() if u.state != "running"}
        assert set(ends) == {2} and ends[2].state == "succeeded"
        assert r.desk.refusals >= 1
        assert ends[2].log_uri and "2" in Path(ends[2].log_uri).read_text()
        assert r.worker.ended == 1
    finally:
        r.stop()


def test_stopping_gives_the_running_jobs_back(rig: Rig) -> None:
    job, pid_file = rig.sleeper(1)
    rig.desk.add([job])
    rig.start()
    wait_for("the job to run", lambda: pid_file.exists() and pid_file.read_text())
    rig.stop()
    assert gone(pid_file)
    assert rig.desk.held == {}  # released
    assert not [u for u in rig.desk.take() if u.state != "running"]


def test_an_idle_worker_ends_by_itself(tmp_path: Path) -> None:
    r = Rig(tmp_path, idle_exit_s=0.2)
    r.desk.add([spec(1, python("print('once')"))])
    r.start()
    assert r.thread is not None
    wait_for("the idle worker to end", lambda: not r.thread.is_alive())  # type: ignore[union-attr]
    assert [u.state for u in r.desk.take() if u.state != "running"] == ["succeeded"]


def test_the_pause_is_short_after_activity_and_grows_to_the_poll_period(tmp_path: Path) -> None:
    r = Rig(tmp_path, eager_s=0.01, eager_rounds=2)  # poll_s 0.05
    try:
        w = r.worker
        r.desk.add([spec(1, python("print('once')"))])
        assert w.step()  # leased
        assert w._pause() == 0.01
        wait_for("the job to end and be reported", lambda: w.step() is not None and w.ended)
        pauses = []
        for _ in range(6):  # nothing to do: eager_rounds short ones, then doubling to poll_s
            assert not w.step()
            pauses.append(w._pause())
        assert pauses == [0.01, 0.01, 0.02, 0.04, 0.05, 0.05]
        r.desk.add([spec(2, python("print('twice')"))])
        time.sleep(w._pause())  # as run() waits between quiet rounds
        assert w.step()
        assert w._pause() == 0.01  # jobs came: short again
    finally:
        r.local.close()


def test_a_report_asks_for_jobs_and_runs_what_its_answer_brings(tmp_path: Path) -> None:
    """The report of an end asks for as many jobs as there is room for; the jobs in its
    answer (the children the end released, on a server) run without a lease call."""
    r = Rig(tmp_path)
    calls: list[str] = []
    lease, report = r.desk.lease, r.desk.report
    r.desk.lease = lambda body: (calls.append("lease"), lease(body))[1]  # type: ignore[method-assign]
    r.desk.report = lambda body: (calls.append(f"report {body.want}"), report(body))[1]  # type: ignore[method-assign]
    try:
        r.desk.add([spec(1, python("print(1)"))])
        assert r.worker.step()
        assert calls == ["lease"]
        r.desk.add([spec(2, python("print(2)"))])  # released by job 1's end, say
        wait_for(
            "job 1's end to be reported", lambda: r.worker.step() is not None and r.worker.ended
        )
        assert calls[-1].startswith("report ") and int(calls[-1].split()[1]) > 0
        assert r.worker.held == 1  # job 2, from the report's answer
        assert "lease" not in calls[1:]
    finally:
        r.local.close()


def test_a_start_is_reported_by_the_end_that_follows_it_soon(tmp_path: Path) -> None:
    """A job that ends before its start was reported is reported once: by its end,
    carrying its start time."""
    r = Rig(tmp_path, running_hold_s=60.0)
    try:
        r.desk.add([spec(1, python("print(1)"))])
        r.worker.step()
        wait_for("the end to be reported", lambda: r.worker.step() is not None and r.worker.ended)
        (end,) = r.desk.take()
        assert end.state == "succeeded" and end.started_at is not None
        assert end.started_at <= end.at
    finally:
        r.local.close()


def test_a_long_job_s_start_is_reported_after_the_hold(rig: Rig) -> None:
    job, pid_file = rig.sleeper(1)
    rig.desk.add([job])
    rig.start()  # running_hold_s 0.05 by default
    wait_for("the job to run", lambda: pid_file.exists() and pid_file.read_text())
    wait_for(
        "its start to be reported while it runs",
        lambda: [u.state for u in rig.desk.updates] == ["running"],
    )
