"""What the Slurm executor says to Slurm and how it reads the answers, without a cluster.

The squeue and jobcomp lines are in the formats Slurm 22.05 printed on the test cluster;
OUT_OF_MEMORY, NODE_FAIL and PREEMPTED cannot be caused on it, so their lines are those
records with the state Slurm writes for them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchid.config import PluginConfig
from orchid.errors import ConfigError
from orchid.executors import registry
from orchid.executors._sbatch import (
    ExitStatus,
    SlurmOptions,
    SlurmRecord,
    batch_script,
    end_reason,
    parse_config,
    parse_exit,
    parse_jobcomp,
    parse_sacct,
    parse_squeue,
    resource_options,
    task_script,
    time_limit,
)
from orchid.executors.base import Resources

SQUEUE = """\
2|N/A|2|CANCELLED|None|15|ns1|root|orchid b2|
1|0|3|COMPLETED|None|0|ns1|root|orchid b1|
1|2|5|FAILED|NonZeroExitCode|512|ns1|root|orchid b1|
1|3|1|FAILED|NonZeroExitCode|768|ns1|root|orchid b1|
8|1|8|PENDING|JobHeldUser|0|ns1|root|orchid b3|
9|N/A|9|RUNNING|None|0|ns1|root|orchid b4|
10|N/A|10|TIMEOUT|TimeLimit|15|ns1|root|orchid b5|
11|N/A|11|OUT_OF_MEMORY|OutOfMemory|9|ns1|root|orchid b6|
"""

JOBCOMP = [
    "JobId=3 UserId=root(0) GroupId=root(0) Name=ns1 JobState=COMPLETED Partition=long "
    "TimeLimit=10 StartTime=2026-12-07T10:02:48 EndTime=2026-12-07T10:02:49 NodeList=vm "
    "NodeCnt=1 ProcCnt=2 WorkDir=/tmp/slx ReservationName= Tres=cpu=2,mem=1500M,node=1 "
    "Account= QOS= WcKey= Cluster=unknown SubmitTime=2026-12-07T10:02:47 "
    "EligibleTime=2026-12-07T10:02:47 ArrayJobId=1 ArrayTaskId=0 DerivedExitCode=0:0 "
    "ExitCode=0:0 ",
    "JobId=12 UserId=root(0) GroupId=root(0) Name=ns1 JobState=OUT_OF_MEMORY Partition=debug "
    "TimeLimit=UNLIMITED NodeList=vm ArrayJobId=0 ArrayTaskId=4294967294 ExitCode=0:125 ",
    "JobId=13 UserId=root(0) GroupId=root(0) Name=ns1 JobState=NODE_FAIL Partition=debug "
    "NodeList=vm ArrayJobId=0 ArrayTaskId=4294967294 ExitCode=0:0 ",
    "JobId=14 UserId=root(0) GroupId=root(0) Name=ns1 JobState=PREEMPTED Partition=debug "
    "NodeList=vm ArrayJobId=7 ArrayTaskId=2 ExitCode=0:15 ",
    "not a job record",
]

SACCT = """\
20|COMPLETED|0:0
21_3|FAILED|2:0
22|CANCELLED by 0|0:15
23|TIMEOUT|0:0
24|OUT_OF_MEMORY|0:125
25|NODE_FAIL|1:0
26|PREEMPTED|0:0
"""


def test_squeue_lines_become_records_by_slurm_id() -> None:
    records = parse_squeue(SQUEUE)
    assert records["2"] == SlurmRecord("2", "CANCELLED", 0, 15, "None", "orchid b2", "root")
    assert records["1_0"].state == "COMPLETED" and records["1_0"].exit_code == 0
    assert (records["1_2"].exit_code, records["1_3"].exit_code) == (2, 3)  # wait statuses
    assert records["8_1"].state == "PENDING" and records["8_1"].reason == "JobHeldUser"
    assert records["11"].signal == 9
    assert parse_squeue("garbage\n\n") == {}


def test_jobcomp_and_sacct_records() -> None:
    comp = parse_jobcomp(JOBCOMP)
    assert set(comp) == {"1_0", "12", "13", "7_2"}
    assert comp["12"].state == "OUT_OF_MEMORY"
    assert comp["7_2"].state == "PREEMPTED" and comp["7_2"].signal == 15
    acct = parse_sacct(SACCT)
    assert acct["21_3"] == SlurmRecord("21_3", "FAILED", 2, 0)
    assert acct["22"].state == "CANCELLED"  # "CANCELLED by <uid>"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("COMPLETED", None),
        ("FAILED", None),  # the exit code and stderr say why
        ("CANCELLED", "cancelled in Slurm"),
        ("TIMEOUT", "walltime of 90s exceeded (Slurm TIMEOUT)"),
        ("OUT_OF_MEMORY", "out of memory"),
        ("NODE_FAIL", "its node failed (Slurm NODE_FAIL)"),
        ("PREEMPTED", "preempted"),
        ("BOOT_FAIL", "BOOT_FAIL"),
        ("DEADLINE", "deadline"),
        ("SOMETHING_NEW", "ended in Slurm state SOMETHING_NEW"),
    ],
)
def test_end_states_map_to_failure_reasons(state: str, expected: str | None) -> None:
    reason = end_reason(SlurmRecord("1", state), 90.0, script_walltime=False)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


def test_the_scripts_walltime_is_a_walltime_failure_whatever_the_state() -> None:
    assert end_reason(SlurmRecord("1", "FAILED", 124), 1.5, True) == "walltime of 1.5s exceeded"


def test_resources_become_sbatch_options() -> None:
    opts = SlurmOptions(
        partition="batch",
        account="phys",
        qos="high",
        constraint="avx512&ib",
        extra=["--reservation=r1", "--exclusive"],
    )
    res = Resources(cores=4, memory_mb=2048, gpus=2, walltime_s=90.0, queue="gpu")
    assert resource_options(res, opts) == [
        "--cpus-per-task=4",
        "--ntasks=1",
        "--nodes=1",
        "--mem=2048M",
        "--gres=gpu:2",
        "--time=2",  # minutes, rounded up
        "--partition=gpu",  # the job's queue wins over the section's partition
        "--account=phys",
        "--qos=high",
        "--constraint=avx512&ib",
        "--no-requeue",
        "--reservation=r1",
        "--exclusive",
    ]
    plain = resource_options(Resources(), SlurmOptions(partition="batch", requeue=True))
    assert plain == [
        "--cpus-per-task=1",
        "--ntasks=1",
        "--nodes=1",
        "--partition=batch",
        "--requeue",
    ]
    assert [time_limit(s) for s in (1, 60, 61, 3600)] == ["1", "1", "2", "60"]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"extra": ["-p debug"]}, "not a long sbatch option"),
        ({"extra": ["--array=0-3"]}, "--array is set by Orchid itself"),
        ({"extra": ["--export=ALL"]}, "--export is set by Orchid itself"),
        ({"extra": ["--uid=0"]}, "--uid is set by Orchid itself"),  # run_as's
        ({"extra": ["--gid=root"]}, "--gid is set by Orchid itself"),
        ({"run_as": 3}, "run_as"),
        ({"namespace": "a b"}, "letters, digits"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"partiton": "x"}, "partiton"),
        ({"shared_dir": "relative/logs"}, "not an absolute path"),
    ],
)
def test_a_bad_setting_is_a_clear_config_error(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        registry.check(PluginConfig("hpc", "slurm", section), "[executors.hpc]")
    assert "[executors.hpc]" in str(info.value)


def test_the_task_script_runs_the_command_with_only_its_variables(tmp_path: Path) -> None:
    out, err, exit_file = tmp_path / "o", tmp_path / "e", tmp_path / "x"
    env = {"A": "it's $HOME", "PATH": "/usr/bin:/bin"}
    text = task_script(
        ["sh", "-c", 'echo "$A"; echo oops >&2; exit 3'],
        env,
        out=out,
        err=err,
        exit_file=exit_file,
        cwd=tmp_path,
        workdir=None,
        walltime_s=None,
    )
    script = tmp_path / "s.sh"
    script.write_text(text)
    (tmp_path / "batch.sh").write_text(batch_script([script]))
    done = subprocess.run(["/bin/sh", str(tmp_path / "batch.sh")], env={}, check=False)
    assert done.returncode == 3
    assert out.read_text() == "it's $HOME\n" and err.read_text() == "oops\n"
    status = parse_exit(exit_file.read_text())
    assert status is not None and (status.code, status.walltime) == (3, False)
    assert status.began is not None and status.ended is not None
    assert status.began <= status.ended


def test_the_task_script_ends_a_job_at_its_walltime(tmp_path: Path) -> None:
    exit_file = tmp_path / "x"
    text = task_script(
        ["sleep", "30"],
        {"PATH": "/usr/bin:/bin"},
        out=tmp_path / "o",
        err=tmp_path / "e",
        exit_file=exit_file,
        cwd=tmp_path,
        workdir=str(tmp_path / "absent"),  # a workdir the node lacks is skipped
        walltime_s=1.0,
    )
    (tmp_path / "s.sh").write_text(text)
    subprocess.run(["/bin/sh", str(tmp_path / "s.sh")], env={}, check=False, timeout=30)
    status = parse_exit(exit_file.read_text())
    assert status is not None and (status.code, status.walltime) == (124, True)
    assert parse_exit("") is None and parse_exit("x y") is None
    assert parse_exit("0 -") == ExitStatus(0, False)


def test_an_array_script_runs_the_task_of_its_index(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.sh"
        p.write_text(f"exit {10 + i}\n")
        paths.append(p)
    (tmp_path / "batch.sh").write_text(batch_script(paths))
    for i in range(3):
        env = {"SLURM_ARRAY_TASK_ID": str(i)}
        done = subprocess.run(["/bin/sh", str(tmp_path / "batch.sh")], env=env, check=False)
        assert done.returncode == 10 + i
    stray = subprocess.run(
        ["/bin/sh", str(tmp_path / "batch.sh")],
        env={"SLURM_ARRAY_TASK_ID": "7"},
        capture_output=True,
        check=False,
    )
    assert stray.returncode == 2 and b"no attempt for array task 7" in stray.stderr


def test_scontrol_config() -> None:
    text = (
        "Configuration data as of 2026-12-07T10:02:16\n"
        "AccountingStorageType   = accounting_storage/none\n"
        "JobCompLoc              = /tmp/slx/log/jobcomp.txt\n"
        "MinJobAge               = 300 sec\n"
    )
    config = parse_config(text)
    assert config["AccountingStorageType"] == "accounting_storage/none"
    assert config["MinJobAge"] == "300 sec"
