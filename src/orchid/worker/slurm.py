"""Pilot jobs: ``orchid worker --slurm N`` submits N Slurm jobs, each running ``orchid
worker`` inside its allocation until it has been idle for a while.

The batch script is made here (:func:`pilot_script`) and handed to ``sbatch --parsable``
on its standard input; N pilots are one job array. The worker's token is never written
into the script: sbatch passes the submitter's environment to the job (its default,
``--export=ALL``), ``ORCHID_TOKEN`` included, and the script refuses to start without it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchid.errors import ConfigError, ExecutorError

Run = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class Pilot:
    """What each pilot job runs and asks Slurm for."""

    url: str
    queue: str | None = None
    workers: int = 1  # job slots in each pilot (and the CPUs it asks for)
    idle_exit_s: float = 300.0  # a pilot ends once idle this long, freeing its allocation
    sbatch_options: tuple[str, ...] = ()  # more #SBATCH lines: --partition=..., --time=...
    command: str = "orchid"  # the orchid command on the nodes
    job_name: str = "orchid-worker"
    worker_options: tuple[str, ...] = ()  # more options of each pilot's `orchid worker`

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"a pilot needs at least 1 worker slot, not {self.workers}")
        if self.idle_exit_s <= 0:
            raise ConfigError("a pilot must exit when idle: give --idle-exit a positive time")
        for option in self.sbatch_options:
            if not option.startswith("-") or "\n" in option:
                raise ConfigError(
                    f"sbatch option {option!r}: one option a line, like --partition=gpu"
                )


def pilot_script(pilot: Pilot, count: int = 1) -> str:
    """The batch script of ``count`` pilots (a job array when more than one)."""
    if count < 1:
        raise ConfigError(f"submit at least 1 pilot, not {count}")
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={shlex.quote(pilot.job_name)}",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
        f"#SBATCH --cpus-per-task={pilot.workers}",
        "#SBATCH --output=orchid-worker-%A_%a.log"
        if count > 1
        else "#SBATCH --output=orchid-worker-%j.log",
    ]
    if count > 1:
        lines.append(f"#SBATCH --array=0-{count - 1}")
    lines += [f"#SBATCH {option}" for option in pilot.sbatch_options]
    argv = [pilot.command, "worker", "--url", pilot.url, "--workers", str(pilot.workers)]
    argv += ["--idle-exit", f"{pilot.idle_exit_s:g}"]
    if pilot.queue:
        argv += ["--queue", pilot.queue]
    argv += pilot.worker_options
    lines += [
        "# An Orchid pilot: runs jobs of its worker queue until idle, then frees the allocation.",
        "# Its worker's token comes from the environment sbatch passed on (ORCHID_TOKEN).",
        "set -euo pipefail",
        'if [ -z "${ORCHID_TOKEN:-}" ]; then',
        '    echo "orchid pilot: ORCHID_TOKEN (a worker\'s token) is not set" >&2',
        "    exit 2",
        "fi",
        f'exec {shlex.join(argv)} --name "orchid-pilot-${{SLURM_JOB_ID}}"',
        "",
    ]
    return "\n".join(lines)


def submit(
    pilot: Pilot,
    count: int,
    token: str,
    *,
    sbatch: str = "sbatch",
    env: dict[str, str] | None = None,
    run: Run = subprocess.run,
) -> str:
    """Submit ``count`` pilots; the Slurm job id (of the array when more than one)."""
    script = pilot_script(pilot, count)
    environment = {**(os.environ if env is None else env), "ORCHID_TOKEN": token}
    try:
        done = run(
            [sbatch, "--parsable"],
            input=script,
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
            check=False,
        )
    except FileNotFoundError:
        raise ExecutorError(f"{sbatch!r} is not found: is this a Slurm submit host?") from None
    except subprocess.TimeoutExpired:
        raise ExecutorError("sbatch did not answer within 120 s") from None
    if done.returncode != 0:
        raise ExecutorError(f"sbatch refused the pilots: {(done.stderr or '').strip()[:500]}")
    job_id = (done.stdout or "").strip().split(";", 1)[0]
    if not job_id:
        raise ExecutorError("sbatch --parsable printed no job id")
    return job_id


def options(values: Sequence[str]) -> tuple[str, ...]:
    """sbatch options given on the command line (``--sbatch=--partition=gpu``)."""
    return tuple(v.strip() for v in values if v.strip())
