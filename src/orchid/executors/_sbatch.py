"""What the Slurm executor says to Slurm and reads back from it, without running anything.

Apart from :mod:`orchid.executors.slurm` so the executor keeps to following jobs, and so
each piece (the settings, the sbatch options of a job's resources, the scripts, the
parsers of squeue, sacct and jobcomp records and the mapping of a Slurm end state to an
Orchid failure reason) is tested on its own with captured output.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator

from orchid.executors.base import ExecutorOptions, Resources

SBATCH_OPTION = re.compile(r"--[a-z][a-z0-9-]*(=.*)?", re.DOTALL)
# options the executor sets itself: an `extra` that changed them would break following jobs
OWN_OPTIONS = frozenset(
    {
        "--array",
        "--comment",
        "--error",
        "--export",
        "--gid",
        "--input",
        "--job-name",
        "--open-mode",
        "--output",
        "--parsable",
        "--wrap",
        "--chdir",
        "--uid",
    }
)


class SlurmOptions(ExecutorOptions):
    """The keys of a ``type = "slurm"`` section (README, "Running on Slurm")."""

    partition: str | None = Field(None, description="sbatch --partition (a job's queue wins)")
    account: str | None = Field(None, description="sbatch --account")
    qos: str | None = Field(None, description="sbatch --qos")
    constraint: str | None = Field(None, description="sbatch --constraint (node features)")
    extra: list[str] = Field(
        default_factory=list, description='more sbatch options, e.g. ["--reservation=r1"]'
    )
    shared_dir: Path | None = Field(
        None,
        description="a folder every node sees, for scripts, logs and result files "
        "(default: the agent's log folder, which must then be on a shared file system)",
    )
    python: str = Field("python3", description="what `python` means on the nodes")
    namespace: str | None = Field(None, description="the job name (default: per database)")
    requeue: bool = Field(
        False, description="let Slurm run a job again after a node failure or preemption"
    )
    poll_interval: float = Field(5.0, gt=0, description="seconds between squeue calls")
    slots: int = Field(10_000, ge=1, description="jobs in flight")
    array_max: int = Field(1000, ge=1, description="tasks per sbatch (below MaxArraySize)")
    bin_dir: Path | None = Field(None, description="where sbatch, squeue, ... are (default: PATH)")
    command_timeout: float = Field(60.0, gt=0, description="seconds one Slurm command may take")
    run_as: str | dict[str, str] | None = Field(
        None,
        description="the OS user jobs run as (sbatch --uid/--gid; the agents must be root): "
        "one name, or a table of Orchid user (or group:NAME, or *) = OS user (default: the "
        "agents' own user; the top-level run_as is for local executors only)",
    )

    @field_validator("extra")
    @classmethod
    def _check_extra(cls, extra: list[str]) -> list[str]:
        for item in extra:
            if not SBATCH_OPTION.fullmatch(item):
                raise ValueError(
                    f"{item!r} is not a long sbatch option; write each as one item, "
                    '"--name=value" or "--flag" (e.g. "--reservation=r1")'
                )
            name = item.split("=", 1)[0]
            if name in OWN_OPTIONS:
                raise ValueError(f"{name} is set by Orchid itself; remove it from extra")
        return extra

    @field_validator("shared_dir", "bin_dir")
    @classmethod
    def _check_absolute(cls, path: Path | None) -> Path | None:
        if path is not None and not path.expanduser().is_absolute():
            raise ValueError(f"{path} is not an absolute path; nodes and agents must agree")
        return path.expanduser() if path is not None else None

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, namespace: str | None) -> str | None:
        if namespace is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", namespace):
            raise ValueError("use letters, digits, '.', '_' and '-' only (it is the job name)")
        return namespace


# --- sbatch options of a job -------------------------------------------------------------


def time_limit(walltime_s: float) -> str:
    """Slurm's ``--time`` in whole minutes, rounded up (Slurm counts in minutes)."""
    return str(max(1, math.ceil(walltime_s / 60)))


def resource_options(res: Resources, opts: SlurmOptions) -> list[str]:
    """The sbatch options of a job's resources and the section's settings.

    ``queue`` is the partition (it wins over the section's ``partition``); ``walltime`` is
    ``--time`` rounded up to minutes (the job script ends the job at the exact second).
    """
    out = [f"--cpus-per-task={res.cores}", "--ntasks=1", "--nodes=1"]
    if res.memory_mb:
        out.append(f"--mem={res.memory_mb}M")
    if res.gpus:
        out.append(f"--gres=gpu:{res.gpus}")
    if res.walltime_s:
        out.append(f"--time={time_limit(res.walltime_s)}")
    partition = res.queue or opts.partition
    for name, value in (
        ("partition", partition),
        ("account", opts.account),
        ("qos", opts.qos),
        ("constraint", opts.constraint),
    ):
        if value:
            out.append(f"--{name}={value}")
    out.append("--requeue" if opts.requeue else "--no-requeue")
    return [*out, *opts.extra]


# --- the scripts --------------------------------------------------------------------------

WALLTIME_GRACE_S = 5
"""Seconds between the TERM and the KILL of a job over its walltime."""


def task_script(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    out: Path,
    err: Path,
    exit_file: Path,
    cwd: Path,
    workdir: str | None,
    walltime_s: float | None,
    umask: int | None = None,
) -> str:
    """The shell script of one attempt, run by its Slurm job (or array task).

    It sets ``env`` on top of what sbatch's environment gave the job, sends stdout
    and stderr to the attempt's log files, enters ``workdir`` when the node has it, runs
    the command (under ``timeout`` when it has a walltime, so that it ends at the second
    and not at Slurm's next whole minute) and writes how it ended to ``exit_file``
    (:func:`parse_exit`): the agent reads its times there, and how it ended when Slurm
    no longer knows. ``umask``: what the job writes is made with it (a ``run_as`` job's
    files are its own alone), rather than with the umask sbatch passed on.
    """
    q = shlex.quote
    lines = ["#!/bin/sh", "# written by Orchid: one attempt of one job"]
    if umask is not None:
        lines.append(f"umask {umask:03o}")
    lines += [f"export {name}={q(value)}" for name, value in sorted(env.items())]
    lines += [
        'export ORCHID_NODE="${SLURMD_NODENAME:-$(hostname)}"',
        f"exec <{q('/dev/null')} >{q(str(out))} 2>{q(str(err))}",
        f"cd {q(str(cwd))} || exit 1",
    ]
    if workdir:
        lines.append(f"if [ -d {q(workdir)} ]; then cd {q(workdir)}; fi")
    command = " ".join(q(a) for a in argv)
    lines.append("began=$(date +%s.%N)")
    if walltime_s:
        limit = f"{walltime_s:g}"
        lines += [
            "start=$(date +%s)",
            f"timeout -k {WALLTIME_GRACE_S} {limit} {command}",
            "rc=$?; how=-",
            # 124: timeout sent TERM; 137: it had to KILL. A command that exits 124 on its own
            # before its walltime is not mistaken for one that ran out of time.
            'if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then',
            f"  [ $(( $(date +%s) - start )) -ge {int(walltime_s)} ] && how=walltime",
            "fi",
        ]
    else:
        lines += [command, "rc=$?; how=-"]
    lines += [
        f'echo "$rc $how $began $(date +%s.%N)" > {q(str(exit_file))}',
        'exit "$rc"',
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ExitStatus:
    """What an attempt's script wrote when its command ended."""

    code: int
    walltime: bool  # ended by the script at its walltime
    began: float | None = None  # epoch seconds, on the node's clock
    ended: float | None = None


def parse_exit(text: str) -> ExitStatus | None:
    """``<status> <walltime|-> <began> <ended>`` (None: not written, or not by the script)."""
    words = text.split()
    try:
        code = int(words[0])
    except (ValueError, IndexError):
        return None
    walltime = words[1:2] == ["walltime"]
    try:
        return ExitStatus(code, walltime, float(words[2]), float(words[3]))
    except (ValueError, IndexError):  # a node without GNU date: no times
        return ExitStatus(code, walltime)


def batch_script(task_scripts: Sequence[Path]) -> str:
    """The script sbatch gets on stdin: array task ``i`` (or the single job) runs the
    ``i``-th attempt's script."""
    q = shlex.quote
    lines = ["#!/bin/sh", f"# written by Orchid: {len(task_scripts)} attempts"]
    if len(task_scripts) == 1:
        lines.append(f"exec /bin/sh {q(str(task_scripts[0]))}")
    else:
        lines.append('case "$SLURM_ARRAY_TASK_ID" in')
        lines += [f"{i}) exec /bin/sh {q(str(p))} ;;" for i, p in enumerate(task_scripts)]
        lines.append("esac")
        lines.append('echo "orchid: no attempt for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2')
    return "\n".join(lines) + "\n"


# --- what Slurm says back -----------------------------------------------------------------

SQUEUE_FIELDS = (
    "ArrayJobID",
    "ArrayTaskID",
    "JobID",
    "State",
    "Reason",
    "exit_code",
    "Name",
    "UserName",
)
"""What ``squeue -O`` prints for each job (``|``-separated; the comment comes last)."""


def squeue_format() -> str:
    return ",".join(f"{f}:|" for f in (*SQUEUE_FIELDS, "Comment"))


@dataclass(frozen=True)
class SlurmRecord:
    """One job (or array task) as Slurm reports it."""

    id: str  # "123" for a job, "123_4" for task 4 of array 123
    state: str  # COMPLETED, FAILED, ... (the first word: "CANCELLED by 0" → CANCELLED)
    exit_code: int | None = None  # the script's exit status
    signal: int = 0  # the signal that ended it, if any
    reason: str = ""
    comment: str = ""
    user: str = ""  # the OS user it runs as


def slurm_id(array_job: str, task: str) -> str:
    """The id a job is named by in squeue, sacct and scancel."""
    return array_job if task in ("", "N/A", "None", "4294967294") else f"{array_job}_{task}"


def _state(text: str) -> str:
    return text.strip().split(" ")[0].rstrip("+").upper()


def _exit(text: str) -> tuple[int | None, int]:
    """``"3:0"`` (code:signal, sacct and jobcomp) or a raw wait status (squeue's 768)."""
    text = text.strip()
    if not text:
        return None, 0
    if ":" in text:
        code, _, sig = text.partition(":")
        return int(code), int(sig or 0)
    status = int(text)
    return (status >> 8) & 0xFF, status & 0x7F


def parse_squeue(text: str) -> dict[str, SlurmRecord]:
    """Records by id from ``squeue -h -r -t all -O <squeue_format()>``."""
    out: dict[str, SlurmRecord] = {}
    for line in text.splitlines():
        parts = line.split("|", len(SQUEUE_FIELDS))
        if len(parts) <= len(SQUEUE_FIELDS):
            continue
        array_job, task, _job, state, reason, code, _name, user, comment = parts
        exit_code, sig = _exit(code) if code.strip().lstrip("-").isdigit() else (None, 0)
        rid = slurm_id(array_job.strip(), task.strip())
        out[rid] = SlurmRecord(
            rid,
            _state(state),
            exit_code,
            sig,
            reason.strip(),
            comment.rstrip("|").strip(),
            user.strip(),
        )
    return out


SACCT_FORMAT = "JobID,State,ExitCode"


def parse_sacct(text: str) -> dict[str, SlurmRecord]:
    """Records by id from ``sacct -X -n -P --format=JobID,State,ExitCode``."""
    out: dict[str, SlurmRecord] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not parts[0]:
            continue
        code, sig = _exit(parts[2])
        out[parts[0]] = SlurmRecord(parts[0], _state(parts[1]), code, sig)
    return out


_JOBCOMP_FIELD = re.compile(r"(\w+)=(\S*)")


def parse_jobcomp(lines: Iterable[str]) -> dict[str, SlurmRecord]:
    """Records by id from the lines of a ``jobcomp/filetxt`` file (the later line wins)."""
    out: dict[str, SlurmRecord] = {}
    for line in lines:
        fields = dict(_JOBCOMP_FIELD.findall(line))
        if "JobId" not in fields or "JobState" not in fields:
            continue
        array_job = fields.get("ArrayJobId", "0")
        task = fields.get("ArrayTaskId", "")
        rid = fields["JobId"] if array_job in ("0", "") else slurm_id(array_job, task)
        code, sig = _exit(fields.get("ExitCode", ""))
        out[rid] = SlurmRecord(rid, _state(fields["JobState"]), code, sig)
    return out


def parse_config(text: str) -> dict[str, str]:
    """``scontrol show config``: the ``Name = value`` lines."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and " " not in name.strip():
            out[name.strip()] = value.strip()
    return out


# --- what an end state means for Orchid ----------------------------------------------------

WAITING = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD"})
GOING = frozenset(
    {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT"}
)
ENDED = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)

# why Slurm ended a job, for the end states that are not the job's own exit
_REASONS = {
    "CANCELLED": "cancelled in Slurm (scancel by a user or an administrator)",
    "OUT_OF_MEMORY": "out of memory: the job used more than its memory request (Slurm "
    "OUT_OF_MEMORY)",
    "NODE_FAIL": "its node failed (Slurm NODE_FAIL)",
    "PREEMPTED": "preempted by a job of higher priority (Slurm PREEMPTED)",
    "BOOT_FAIL": "its node failed to boot (Slurm BOOT_FAIL)",
    "DEADLINE": "its deadline passed (Slurm DEADLINE)",
    "REVOKED": "revoked by Slurm (federation)",
}


def end_reason(record: SlurmRecord, walltime_s: float | None, script_walltime: bool) -> str | None:
    """Why an ended job failed, for people (None: it did not fail because of Slurm, and
    its exit code says the rest). ``script_walltime``: its script saw the walltime pass."""
    if script_walltime or record.state == "TIMEOUT":
        how = " (Slurm TIMEOUT)" if record.state == "TIMEOUT" else ""
        if walltime_s:
            return f"walltime of {walltime_s:g}s exceeded{how}"
        return "walltime exceeded: Slurm's time limit (--time) passed (Slurm TIMEOUT)"
    if record.state in _REASONS:
        return _REASONS[record.state]
    if record.state in ("COMPLETED", "FAILED", "SPECIAL_EXIT"):
        return None
    return f"ended in Slurm state {record.state}"


# sbatch messages of a controller that is briefly unable to answer: the carrier hands the
# jobs again later. Any other refusal is for those jobs (a partition that does not exist, an
# account they may not use): they fail with Slurm's message.
TRANSIENT = re.compile(
    r"Unable to contact slurm controller|Socket timed out|temporarily unavailable|"
    r"try again|Connection refused|Zero Bytes were transmitted|Slurm backup controller",
    re.IGNORECASE,
)
