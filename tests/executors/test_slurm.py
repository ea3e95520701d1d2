"""The Slurm executor against a real single-node Slurm (tests/executors/slurm_cluster.py).

The cluster runs for the whole test process; these tests share the xdist group "slurm" so
one process owns it. Each test has a namespace (job name) of its own, since tests reuse
attempt keys and the cluster outlives them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchid.errors import ConfigError, ExecutorError
from orchid.executors.base import BuildContext, Executor, JobSpec, JobUpdate, Payload, Resources
from orchid.executors.runas import OsUser, RunAs
from orchid.executors.slurm import SlurmExecutor, SlurmOptions
from tests import waiting
from tests.executors.contract import (
    SLEEP_LONG,
    ExecutorContract,
    Reopen,
    finals,
    python,
    spec,
    wait_for,
    wait_for_state,
)
from tests.executors.osusers import alice, as_user, bob, logs, open_tmp
from tests.executors.slurm_cluster import SlurmCluster, slurm_fixture  # noqa: F401 - `slurm`

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="Debian's Slurm"),
    pytest.mark.xdist_group("slurm"),
]

__all__ = ["alice", "bob", "logs", "open_tmp"]  # fixtures

OPTIONS = SlurmOptions(poll_interval=0.2)


def make(log_dir: Path, namespace: str, **kw: object) -> SlurmExecutor:
    return SlurmExecutor(log_dir, OPTIONS.model_copy(update=kw), namespace=namespace)


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def ex(slurm: SlurmCluster, tmp_path: Path, namespace: str) -> Iterator[SlurmExecutor]:
    """An executor on the test cluster, its logs under ``tmp_path / "logs"``."""
    executor = make(tmp_path / "logs", namespace)
    yield executor
    executor.close()


def job_fields(job_id: str) -> dict[str, str]:
    """``scontrol show job -o``'s fields of one job (still known within MinJobAge)."""
    line = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"(\S+?)=(\S*)", line))


class TestSlurmContract(ExecutorContract):
    requested = Resources(cores=2, memory_mb=1500, gpus=1, walltime_s=600.0, queue="long")

    @pytest.fixture
    def executor(self, ex: SlurmExecutor) -> SlurmExecutor:
        return ex

    @pytest.fixture
    def reopen(self, slurm: SlurmCluster, tmp_path: Path, namespace: str) -> Iterator[Reopen]:
        made: list[SlurmExecutor] = []

        def again(old: Executor) -> Executor:
            old.close()  # as a crash: nothing cancelled, the jobs stay in Slurm
            made.append(make(tmp_path / "logs", namespace))
            return made[-1]

        yield again
        for ex in made:
            ex.close()

    def observed_resources(self, executor: Executor, key: str) -> Resources | None:
        assert isinstance(executor, SlurmExecutor)
        workflow, job, attempt = key.split("-")
        ids = executor._log_dir / workflow / f"{job}.{attempt}.slurm"
        fields = job_fields(ids.read_text().strip())
        hours, minutes, seconds = (int(x) for x in fields["TimeLimit"].split(":"))
        return Resources(
            cores=int(fields["NumCPUs"]),
            memory_mb=int(fields["MinMemoryNode"].rstrip("M")),
            gpus=int(fields["TresPerNode"].rsplit(":", 1)[1]),
            walltime_s=float(hours * 3600 + minutes * 60 + seconds),
            queue=fields["Partition"],
        )


# --- Slurm's end states, for real ------------------------------------------------------------


def test_a_batch_of_one_work_is_one_job_array(tmp_path: Path, ex: SlurmExecutor) -> None:
    jobs = [
        spec(i, python("import sys; print(int(sys.argv[1]) * 2)", "{n}"), {"n": i})
        for i in range(1, 13)
    ]
    jobs.append(spec(20, python("print(-1)"), resources=Resources(cores=2)))
    ex.submit(jobs)
    done = finals(wait_for(ex, len(jobs)))
    assert {done[j.key].result for j in jobs[:-1]} == {2 * i for i in range(1, 13)}
    assert done[jobs[-1].key].result == -1
    ids = [(tmp_path / "logs/1" / f"{j.job_id}.1.slurm").read_text() for j in jobs]
    arrays = {i.split("_")[0] for i in ids}
    assert len(arrays) == 2, ids  # twelve alike in one array, the one of 2 cores apart
    assert ids[-1].isdigit()  # a single job, not an array of one


def test_failed_with_exit_code_and_cancelled_by_abort(
    slurm: SlurmCluster, ex: SlurmExecutor, namespace: str
) -> None:
    failing = spec(1, python("import sys; print('bad input', file=sys.stderr); sys.exit(5)"))
    sleeping = spec(2, SLEEP_LONG)
    ex.submit([failing, sleeping])
    updates: list[JobUpdate] = []
    wait_for_state(ex, sleeping.key, "running", updates)
    ex.cancel([sleeping.key])
    done = finals(wait_for(ex, 2, into=updates))
    assert done[failing.key].exit_code == 5
    assert done[failing.key].error == "exit code 5: bad input"
    started = done[failing.key].started_at  # the script's own times, from the node
    assert started is not None and started <= done[failing.key].at
    assert done[failing.key].usage is not None
    assert done[sleeping.key].error == "cancelled"
    waiting.wait_for(  # COMPLETING a moment after scancel, then CANCELLED
        lambda: f"CANCELLED and FAILED in Slurm (got {_states(slurm, namespace)})",
        lambda: _states(slurm, namespace) == ["CANCELLED", "FAILED"],
    )


def test_cancelled_outside_orchid_is_a_failure_that_says_so(
    slurm: SlurmCluster, ex: SlurmExecutor, namespace: str
) -> None:
    job = spec(1, SLEEP_LONG)
    ex.submit([job])
    updates: list[JobUpdate] = []
    wait_for_state(ex, job.key, "running", updates)
    slurm.run("scancel", f"--name={namespace}")
    (update,) = finals(wait_for(ex, 1, into=updates)).values()
    assert update.state == "failed"
    assert update.error is not None and "cancelled in Slurm" in update.error


def test_end_states_are_found_after_the_agent_was_away(
    slurm: SlurmCluster, tmp_path: Path, namespace: str
) -> None:
    """Jobs that ended while no executor watched: one by its exit (and found by the comment
    of its submission), one cancelled in Slurm."""
    gate = tmp_path / "gate"
    ex = make(tmp_path / "logs", namespace)
    wait_gate = python(
        "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.05)\nprint(7)",
        str(gate),
    )
    jobs = [spec(1, wait_gate), spec(2, SLEEP_LONG)]
    ex.submit(jobs)
    updates: list[JobUpdate] = []
    for job in jobs:
        wait_for_state(ex, job.key, "running", updates)
    ex.close()
    gate.touch()
    slurm.run("scancel", (tmp_path / "logs/1/2.1.slurm").read_text())
    # as if the agent had died before it wrote job 1's Slurm id: found by its batch's comment
    (tmp_path / "logs/1/1.1.slurm").unlink()
    again = make(tmp_path / "logs", namespace)
    try:
        again.submit([dataclasses.replace(j, adopted=True) for j in jobs])
        done = finals(wait_for(again, 2))
        assert done["1-1-1"].result == 7
        assert "cancelled in Slurm" in (done["1-2-1"].error or "")
    finally:
        again.close()


def test_slurms_own_time_limit_is_a_walltime_failure(
    slurm: SlurmCluster, tmp_path: Path, namespace: str
) -> None:
    """A real TIMEOUT: Slurm counts in minutes and checks every 30 s, so this takes 60-90 s
    (jobs with a walltime are ended by their script at the second, before Slurm does)."""
    ex = make(tmp_path / "logs", namespace, extra=["--time=1"])
    try:
        job = spec(1, Payload(kind="command", command=("sleep", "600")))
        ex.submit([job])
        (update,) = finals(wait_for(ex, 1, timeout=240)).values()
        assert update.state == "failed"
        assert update.error is not None and "(Slurm TIMEOUT)" in update.error, update.error
        (fields,) = _slurm_jobs(slurm, namespace)
        assert fields["JobState"] == "TIMEOUT"
    finally:
        ex.close()


def test_a_refused_job_fails_with_slurms_message(ex: SlurmExecutor) -> None:
    bad = spec(1, python("print(1)"), resources=Resources(queue="nosuchpartition"))
    good = spec(2, python("print(2)"))
    ex.submit([bad, good])
    done = finals(wait_for(ex, 2))
    assert "Invalid partition" in (done[bad.key].error or ""), done[bad.key]
    assert done[good.key].result == 2


def _bin_dir(folder: Path, **scripts: str) -> Path:
    """A bin_dir of Slurm's commands where those named run the given shell script instead
    (``$REAL`` is the real command)."""
    folder.mkdir()
    for name in ("sbatch", "scontrol", "squeue", "scancel", "sacct"):
        real = shutil.which(name) or name
        if name not in scripts:
            (folder / name).symlink_to(real)
            continue
        (folder / name).write_text(f"#!/bin/sh\nREAL={real}\n{scripts[name]}\n")
        (folder / name).chmod(0o755)
    return folder


def _flaky_sbatch(folder: Path, works: int) -> Path:
    """A bin_dir whose sbatch answers ``works`` calls, then fails as an unreachable
    controller does while the file ``broken`` exists."""
    bin_dir = _bin_dir(
        folder,
        sbatch=f"""n=$(cat {folder}/count 2>/dev/null || echo 0); echo $((n + 1)) > {folder}/count
if [ -e {folder}/broken ] && [ "$n" -ge {works} ]; then
  echo "sbatch: error: Batch job submission failed: Unable to contact slurm controller" >&2
  exit 1
fi
"""
        + 'exec $REAL "$@"',
    )
    (folder / "broken").touch()
    return bin_dir


def test_ends_slurm_forgot_come_from_jobcomp_then_the_exit_file(
    slurm: SlurmCluster, tmp_path: Path, namespace: str
) -> None:
    """squeue shows a job only until MinJobAge after its end (300 s here); past that, the
    end comes from the jobcomp file, or without one from the exit status the job's script
    wrote; a job with neither (killed) is reported gone."""
    # an squeue that shows no ended job: each one is past MinJobAge as soon as it ends
    forgot = (
        'for a in "$@"; do shift; [ "$a" = --states=all ] || set -- "$@" "$a"; done\n'
        'exec $REAL "$@"'
    )
    killed = spec(3, python("import os, signal; os.kill(os.getppid(), signal.SIGKILL)"))
    jobs = [spec(1, python("import sys; sys.exit(4)")), spec(2, python("print(7)")), killed]
    with_jobcomp = make(
        tmp_path / "a", namespace, bin_dir=_bin_dir(tmp_path / "bin-a", squeue=forgot)
    )
    try:
        assert with_jobcomp._jobcomp == slurm.jobcomp
        with_jobcomp.submit(jobs)
        done = finals(wait_for(with_jobcomp, 3))
        assert (done["1-1-1"].exit_code, done["1-1-1"].error) == (4, "exit code 4")
        assert done["1-2-1"].result == 7
        assert done["1-3-1"].error == "killed by signal SIGKILL"  # as jobcomp says
    finally:
        with_jobcomp.close()
    no_jobcomp = _bin_dir(
        tmp_path / "bin-b", squeue=forgot, scontrol='$REAL "$@" | grep -v "^JobComp"'
    )
    only_exit = make(tmp_path / "b", namespace, bin_dir=no_jobcomp)
    try:
        assert only_exit._jobcomp is None
        only_exit.submit(jobs)
        done = finals(wait_for(only_exit, 3))
        assert (done["1-1-1"].exit_code, done["1-1-1"].error) == (4, "exit code 4")
        assert done["1-2-1"].result == 7
        assert "is gone and left no exit status" in (done["1-3-1"].error or "")
    finally:
        only_exit.close()


def test_an_unreachable_controller_at_submission(
    slurm: SlurmCluster, tmp_path: Path, namespace: str
) -> None:
    """Nothing submitted: the call fails (the carrier hands the jobs again). Part of the
    batch submitted: the rest waits, and goes once the controller answers again."""
    bin_dir = _flaky_sbatch(tmp_path / "bin", works=1)
    ex = make(tmp_path / "logs", namespace, bin_dir=bin_dir)
    try:
        initial = ex.capacity()
        small = [spec(i, python("print({i})".replace("{i}", str(i)))) for i in (1, 2)]
        big = [
            spec(i, python("print({i})".replace("{i}", str(i))), resources=Resources(cores=2))
            for i in (3, 4)
        ]
        ex.submit(small + big)  # one array submitted, the other one waits
        assert ex.capacity() == initial - 4
        with pytest.raises(ExecutorError, match="Unable to contact slurm controller"):
            ex.submit([spec(5, python("print(5)"))])
        assert ex.capacity() == initial - 4  # job 5 is not the executor's
        (bin_dir / "broken").unlink()
        done = finals(wait_for(ex, 4))
        assert {done[j.key].result for j in small + big} == {1, 2, 3, 4}
        assert ex.capacity() == initial
    finally:
        ex.close()


def test_jobs_get_no_agent_environment(ex: SlurmExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHID_DB_URL", "postgresql://secret@db/orchid")
    monkeypatch.setenv("SOME_TOKEN", "hush")
    code = "import json, os; print(json.dumps(sorted(os.environ)))"
    ex.submit([spec(1, python(code, env={"MINE": "x{n}"}), {"n": 3})])
    (update,) = finals(wait_for(ex, 1)).values()
    names = set(update.result)
    assert "ORCHID_DB_URL" not in names and "SOME_TOKEN" not in names
    assert {"MINE", "ORCHID_JOB_KEY", "ORCHID_RESULT_FILE", "PATH"} <= names


def test_an_unreachable_controller_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=x\nSlurmctldHost=nowhere(127.0.0.1)\nSlurmctldPort=9\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    with pytest.raises(ConfigError, match="cannot reach the Slurm controller"):
        make(tmp_path, "x", command_timeout=3)


def test_missing_slurm_commands_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="scontrol not found"):
        make(tmp_path, "x", bin_dir=tmp_path)


# --- run_as: each job as its workflow's OS user (the tests run as root) -------------------

WHO = (
    'printf \'{"uid": %s, "gid": %s, "home": "%s", "user": "%s"}\' '
    '"$(id -u)" "$(id -g)" "$HOME" "$USER" > "$ORCHID_RESULT_FILE"'
)


def make_as(logs: Path, namespace: str, run_as: RunAs) -> SlurmExecutor:
    return SlurmExecutor(logs, OPTIONS, namespace=namespace, run_as=run_as, home=logs.parent)


def sh(script: str) -> Payload:
    return Payload(kind="command", command=("sh", "-c", script))


def owned(job_id: int, payload: Payload, owner: str, wf: int, group: str | None = None) -> JobSpec:
    job = spec(job_id, payload, workflow_id=wf)  # every job of work "work"
    job.owner, job.share_group = owner, group
    return job


def test_run_as_submits_each_job_as_its_workflows_os_user(
    slurm: SlurmCluster, logs: Path, namespace: str, alice: OsUser, bob: OsUser
) -> None:
    """Works of one name in workflows of two users, handed over together: never one array."""
    ex = make_as(logs, namespace, RunAs(None, {"alice": alice, "group:physics": bob}))
    jobs = [
        owned(1, sh(WHO), "alice", wf=1),
        owned(2, sh(WHO), "alice", wf=1),
        owned(3, sh(WHO), "carol", wf=2, group="physics"),
        owned(4, sh(WHO), "dave", wf=3),  # no entry, no "*"
    ]
    try:
        ex.submit(jobs)
        done = finals(wait_for(ex, len(jobs)))
    finally:
        ex.close()
    for job, user in ((jobs[0], alice), (jobs[1], alice), (jobs[2], bob)):
        update = done[job.key]
        assert update.state == "succeeded", update.error
        assert update.result == {
            "uid": user.uid,
            "gid": user.gid,
            "home": user.home,
            "user": user.name,
        }
    ids = [_slurm_id(logs, j) for j in jobs[:3]]
    assert ids[0].split("_")[0] == ids[1].split("_")[0] != ids[2]  # an array per user
    assert job_fields(ids[0])["UserId"] == f"{alice.name}({alice.uid})"
    assert job_fields(ids[2])["UserId"] == f"{bob.name}({bob.uid})"
    refused = done[jobs[3].key]
    assert refused.state == "failed"
    assert "run_as names no OS user for Orchid user 'dave'" in (refused.error or "")


def test_a_run_as_job_reads_and_leaves_only_what_its_user_may(
    slurm: SlurmCluster, open_tmp: Path, logs: Path, namespace: str, alice: OsUser, bob: OsUser
) -> None:
    secret = open_tmp / "agents-secret"
    secret.write_text("the service's own")
    secret.chmod(0o600)
    ex = make_as(logs, namespace, RunAs(alice, {}))
    peek = owned(1, sh(f"cat {secret}"), "anyone", wf=1)
    mine = owned(2, sh("echo alice-private; umask; touch made; stat -c %a made"), "anyone", wf=1)
    try:
        ex.submit([peek, mine])
        done = finals(wait_for(ex, 2))
    finally:
        ex.close()
    assert done[peek.key].state == "failed"
    assert "Permission denied" in (done[peek.key].error or ""), done[peek.key].error
    assert done[mine.key].result == 600, done[mine.key]  # umask 077, as the local executor's
    folder = logs / "1"
    assert (folder / "2.1.out").read_text().split()[:2] == ["alice-private", "0077"]
    info = folder.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (alice.uid, alice.gid, 0o700)
    attempt = sorted(folder.glob("2.1.*"))
    assert {p.name for p in attempt} >= {"2.1.sh", "2.1.args.json", "2.1.out", "2.1.exit"}
    for path in attempt:
        assert path.stat().st_uid == alice.uid, path
        assert path.stat().st_mode & 0o077 == 0, path
    for path in (folder, folder / "2.1.out", folder / "2.1.sh", logs / "slurm"):
        with pytest.raises(PermissionError):
            as_user(bob, lambda p=path: os.listdir(p) if p.is_dir() else p.read_bytes())
    # the ids the agent cancels by are its own, out of the job's reach
    assert _slurm_id(logs, mine) and not (folder / "2.1.slurm").exists()
    with pytest.raises(PermissionError):
        as_user(alice, lambda: (logs / "slurm" / "1" / "2.1.slurm").write_text("1"))


def test_run_as_is_checked_when_the_executor_is_made(
    tmp_path: Path, logs: Path, alice: OsUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = BuildContext(name="hpc", log_dir=logs, home=logs.parent)

    def build(run_as: object) -> SlurmExecutor:
        return SlurmExecutor.from_config(SlurmOptions.model_validate({"run_as": run_as}), context)

    with pytest.raises(ConfigError, match=r"\[executors.hpc\]: there is no OS user 'orchid-t-no"):
        build("orchid-t-nobody-here")
    with pytest.raises(ConfigError, match=r"run_as\.bob: there is no OS user 'orchid-t-nob"):
        build({"alice": alice.name, "bob": "orchid-t-nobody-here"})
    with pytest.raises(ConfigError, match="is root"):
        build({"*": "root"})
    monkeypatch.setattr(os, "geteuid", lambda: 4242)  # Slurm takes --uid from root only
    with pytest.raises(ConfigError, match="executor hpc: run_as needs the agents to run as root"):
        build(alice.name)


def test_an_attempt_without_its_slurm_id_is_found_by_a_job_of_its_own_os_user_only(
    slurm: SlurmCluster, logs: Path, namespace: str, alice: OsUser, bob: OsUser
) -> None:
    """An agent that died between writing a batch's keys and its attempts' Slurm ids finds
    them by the batch in squeue's comment. With run_as squeue lists the jobs of the users'
    accounts, and any of them may sbatch a job of that name and comment (here as root with
    --uid, as the user would): another OS user's such job is never taken for the attempt."""
    ex = make_as(logs, namespace, RunAs(None, {"alice": alice, "bob": bob}))
    job = dataclasses.replace(owned(1, sh("true"), "alice", wf=1), adopted=True)
    batch = uuid.uuid4().hex[:12]
    (logs / "slurm").mkdir(mode=0o700, exist_ok=True)
    (logs / "slurm" / f"{batch}.keys").write_text(job.key + "\n")

    def sbatch_as(user: OsUser) -> str:
        argv = [
            "sbatch", "--parsable", "--hold", f"--job-name={namespace}",
            f"--comment=orchid {batch}", f"--uid={user.uid}", f"--gid={user.gid}",
            "--output=/dev/null", "--chdir=/tmp", "--wrap=true",
        ]  # fmt: skip
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        return out.strip().split(";")[0]

    ids: list[str] = []
    try:
        ids.append(sbatch_as(bob))
        assert ex._find([job]) == {}  # bob's job is not alice's attempt
        ids.append(sbatch_as(alice))
        assert ex._find([job]) == {job.key: ids[1]}
    finally:
        subprocess.run(["scancel", *ids], check=False)
        ex.close()


def _slurm_id(logs: Path, job: JobSpec) -> str:
    return (logs / "slurm" / str(job.workflow_id) / f"{job.job_id}.{job.attempt}.slurm").read_text()


def _states(slurm: SlurmCluster, namespace: str) -> list[str]:
    return sorted(f["JobState"] for f in _slurm_jobs(slurm, namespace))


def _slurm_jobs(slurm: SlurmCluster, namespace: str) -> list[dict[str, str]]:
    out = slurm.run("scontrol", "show", "job", "-o")
    jobs = [dict(re.findall(r"(\S+?)=(\S*)", line)) for line in out.splitlines()]
    return [j for j in jobs if j.get("JobName") == namespace]
