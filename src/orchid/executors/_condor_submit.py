"""HTCondor's submit language, as the HTCondor executor writes it and reads job ads back.

Apart from :mod:`orchid.executors.htcondor` so the executor keeps to following jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from orchid.executors.base import ExecutorOptions, Usage


class HTCondorOptions(ExecutorOptions):
    schedd: str | None = Field(None, description="the schedd's name (default: the local one)")
    collector: str | None = Field(None, description="the pool's collector host:port")
    python: str = "python3"
    namespace: str | None = None
    queue_attribute: str = Field("JobFlavour", description="the job attribute a `queue` sets")
    poll_interval: float = Field(10.0, gt=0, description="seconds between schedd queries")
    slots: int = Field(10_000, ge=1, description="jobs in flight")
    extra: dict[str, str] = Field(default_factory=dict, description="more submit commands")


RESULT_NAME = "orchid-result.json"
# the job's shell: an empty result file (transferred back even if the job writes none),
# then the workdir when the node has it, then the command
PRELUDE = (
    'export ORCHID_RESULT_FILE="$PWD/' + RESULT_NAME + '"; : > "$ORCHID_RESULT_FILE"; '
    'if [ -n "$ORCHID_WORKDIR" ] && [ -d "$ORCHID_WORKDIR" ]; then cd "$ORCHID_WORKDIR"; fi; '
    'exec "$0" "$@"'
)
HOLD_JOB_DURATION = 46  # HoldReasonCode: the job exceeded allowed_job_duration
IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5
PROJECTION = [
    "ClusterId",
    "ProcId",
    "OrchidKey",
    "JobStatus",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "HoldReason",
    "HoldReasonCode",
    "RemoteWallClockTime",
    "RemoteUserCpu",
    "RemoteSysCpu",
    "ResidentSetSize",
    "JobCurrentStartDate",
]


def condor_value(text: str) -> str:
    """A value for the submit language: ``$`` would start a macro."""
    return text.replace("$", "$(DOLLAR)")


def condor_arguments(argv: Sequence[str]) -> str:
    """argv in HTCondor's new argument syntax (double-quoted; '' and "" escape quotes)."""

    def one(arg: str) -> str:
        arg = arg.replace('"', '""')
        if not arg or "'" in arg or any(c.isspace() for c in arg):
            return "'" + arg.replace("'", "''") + "'"
        return arg

    return condor_value('"' + " ".join(one(a) for a in argv) + '"')


def condor_environment(env: dict[str, str]) -> str:
    """Variables in HTCondor's new environment syntax: ``"A=1 B='x y'"``."""

    def one(name: str, value: str) -> str:
        value = value.replace('"', '""')
        if not value or "'" in value or any(c.isspace() for c in value):
            value = "'" + value.replace("'", "''") + "'"
        return f"{name}={value}"

    return condor_value('"' + " ".join(one(k, v) for k, v in sorted(env.items())) + '"')


def description(opts: HTCondorOptions, namespace: str) -> dict[str, str]:
    """The submit description of a batch: each item (see ``HTCondorExecutor._item``) fills
    the ``orchid_*`` macros of one job."""
    extra = {k: condor_value(v) for k, v in opts.extra.items()}
    return {
        "universe": "vanilla",
        "executable": "/bin/sh",
        "transfer_executable": "false",
        "arguments": "$(orchid_args)",
        "environment": "$(orchid_env)",
        "initialdir": "$(orchid_dir)",
        "output": "$(orchid_out)",
        "error": "$(orchid_err)",
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT",
        "transfer_output_files": RESULT_NAME,
        "transfer_output_remaps": f'"{RESULT_NAME} = $(orchid_result)"',
        "request_cpus": "$(orchid_cpus)",
        "request_memory": "$(orchid_memory)",
        "request_gpus": "$(orchid_gpus)",
        "allowed_job_duration": "$(orchid_walltime)",
        "+OrchidKey": '"$(orchid_key)"',
        "+OrchidNamespace": f'"{condor_value(namespace)}"',
        f"+{opts.queue_attribute}": "$(orchid_queue)",
        "+OrchidWork": '"$(orchid_work)"',
        **extra,
    }


def usage_of(ad: Any) -> Usage:
    rss = ad.get("ResidentSetSize")
    return Usage(
        wall_s=float(ad.get("RemoteWallClockTime", 0.0) or 0.0),
        cpu_user_s=float(ad.get("RemoteUserCpu", 0.0) or 0.0),
        cpu_system_s=float(ad.get("RemoteSysCpu", 0.0) or 0.0),
        max_rss_kb=int(rss or 0),
    )


def drop_empty(path: Path) -> None:
    """The prelude makes an empty result file; a job that wrote nothing has no result."""
    try:
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass
