"""`orchid worker`: run jobs of a worker queue here, leased from a server over HTTPS.

Loads neither SQLAlchemy nor the server's packages (tests/cli/test_light_imports.py): the
worker is the local executor and an HTTP client.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Annotated

import typer

from orchid.cli.common import UrlOpt, WorkersOpt, _logging, app, err
from orchid.client.config import from_environment, normalize_url
from orchid.errors import InvalidInput

DEFAULT_PREFETCH = 64


@app.command("worker")
def worker_command(
    url: UrlOpt = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="a worker's token (`orchid token create --user NAME --worker QUEUE`); "
            "better given as env ORCHID_TOKEN, which other users cannot see",
            show_default=False,
        ),
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option("--queue", help="the queue to serve (checked against the token's)"),
    ] = None,
    workers: WorkersOpt = None,
    idle_exit: Annotated[
        float | None,
        typer.Option(
            "--idle-exit",
            min=0,
            metavar="SECONDS",
            help="exit after this long with nothing to do (default: run until stopped)",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="this worker's name (default: host-pid-random)"),
    ] = None,
    scratch: Annotated[
        Path | None,
        typer.Option(
            "--scratch", help="where running jobs write their files (default: a new temp folder)"
        ),
    ] = None,
    run_as: Annotated[
        str | None, typer.Option("--run-as", help="the OS user jobs run as (default: this one)")
    ] = None,
    env_passthrough: Annotated[
        str | None,
        typer.Option(
            "--env-passthrough",
            help="more of this process's variables jobs get (comma-separated NAME or PREFIX*)",
        ),
    ] = None,
    reuse_workers: Annotated[
        bool,
        typer.Option(
            "--reuse-workers/--no-reuse-workers",
            help="run a workflow's function jobs in long-lived processes, one per slot",
        ),
    ] = True,
    prefetch: Annotated[
        int,
        typer.Option(
            "--prefetch",
            min=0,
            help="jobs leased ahead of free slots while jobs are quick (under 1 s), as the "
            "agents' prefetch: fewer round trips to the server for short jobs",
        ),
    ] = DEFAULT_PREFETCH,
    channel: Annotated[
        bool,
        typer.Option(
            "--channel/--no-channel",
            help="talk to the server over one WebSocket (the worker channel), HTTP requests "
            "where it is not available; --no-channel: HTTP requests only",
        ),
    ] = True,
    slurm: Annotated[
        int | None,
        typer.Option(
            "--slurm",
            min=1,
            metavar="N",
            help="submit N pilot jobs to Slurm that run `orchid worker` in their allocation "
            "and exit when idle (default --idle-exit there: 300 s), then return",
        ),
    ] = None,
    sbatch: Annotated[
        list[str] | None,
        typer.Option(
            "--sbatch",
            metavar="OPTION",
            help="with --slurm: an sbatch option for the pilots, e.g. --sbatch=--partition=gpu "
            "(repeatable)",
        ),
    ] = None,
) -> None:
    """Run jobs of a worker queue here: lease them from the server, run them as the local
    executor does, report their ends; SIGTERM gives back what runs and exits."""
    env_url, env_token = from_environment()
    server = url or env_url
    secret = token or env_token
    if not server:
        raise InvalidInput("which server? give --url or set ORCHID_URL")
    if not secret:
        raise InvalidInput(
            "a worker needs a worker's token: set ORCHID_TOKEN (or --token); an admin makes "
            "one with `orchid token create --user NAME --worker QUEUE`"
        )
    server = normalize_url(server)
    slots = workers or os.cpu_count() or 1
    if slurm is not None:
        passed = _passed_on(scratch, run_as, env_passthrough, reuse_workers, prefetch, channel)
        _submit_pilots(server, secret, queue, slots, idle_exit, slurm, sbatch or [], passed)
        return
    _run(
        server,
        secret,
        queue,
        slots,
        idle_exit,
        name,
        scratch,
        run_as,
        env_passthrough,
        reuse_workers,
        prefetch,
        channel,
    )


def _submit_pilots(
    url: str,
    token: str,
    queue: str | None,
    slots: int,
    idle_exit: float | None,
    count: int,
    sbatch: list[str],
    passed: tuple[str, ...] = (),
) -> None:
    from orchid.worker import slurm

    pilot = slurm.Pilot(
        url=url,
        queue=queue,
        workers=slots,
        idle_exit_s=idle_exit if idle_exit else 300.0,
        sbatch_options=slurm.options(sbatch),
        command=_orchid_command(),
        worker_options=passed,
    )
    job_id = slurm.submit(pilot, count, token)
    err.print(f"submitted {count} pilot job(s) to Slurm: job {job_id}", highlight=False)
    sys.stdout.write(job_id + "\n")


def _passed_on(
    scratch: Path | None,
    run_as: str | None,
    env_passthrough: str | None,
    reuse_workers: bool,
    prefetch: int,
    channel: bool,
) -> tuple[str, ...]:
    """The options of this command the pilots' `orchid worker` runs with (those not at
    their defaults): how the pilots run their jobs is what this command was told."""
    out: list[str] = []
    if scratch is not None:
        out += ["--scratch", str(scratch)]
    if run_as:
        out += ["--run-as", run_as]
    if env_passthrough:
        out += ["--env-passthrough", env_passthrough]
    if not reuse_workers:
        out.append("--no-reuse-workers")
    if prefetch != DEFAULT_PREFETCH:
        out += ["--prefetch", str(prefetch)]
    if not channel:
        out.append("--no-channel")
    return tuple(out)


def _orchid_command() -> str:
    """This orchid command, by its full path when it has one (the nodes share it, often):
    the one beside this python (its virtualenv's, even when not on PATH), else PATH's."""
    beside = Path(sys.executable).parent / "orchid"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("orchid") or "orchid"


def _run(
    url: str,
    token: str,
    queue: str | None,
    slots: int,
    idle_exit: float | None,
    name: str | None,
    scratch: Path | None,
    run_as: str | None,
    env_passthrough: str | None,
    reuse_workers: bool,
    prefetch: int,
    channel: bool,
) -> None:
    from orchid.executors.local import LocalExecutor
    from orchid.executors.runas import RunAs
    from orchid.worker.channel import ChannelLessor
    from orchid.worker.http import HttpLessor
    from orchid.worker.loop import Worker, WorkerOptions, default_name

    _logging(True)
    options = WorkerOptions(
        name=name or default_name(), queue=queue, idle_exit_s=idle_exit, url=url
    )
    if scratch is not None:  # a node's scratch folder may not exist yet
        Path(scratch).mkdir(parents=True, exist_ok=True, mode=0o700)
    root = Path(tempfile.mkdtemp(prefix="orchid-worker-", dir=scratch))
    lessor = ChannelLessor(url, token) if channel else HttpLessor(url, token)
    passthrough = [n.strip() for n in (env_passthrough or "").split(",") if n.strip()]
    woken = threading.Event()
    try:
        executor = LocalExecutor(
            slots,
            root / "logs",
            wake=woken.set,
            reuse_workers=reuse_workers,
            prefetch=prefetch,
            run_as=RunAs.parse(run_as, "--run-as"),
            env_passthrough=passthrough,
            home=root,
        )
        worker = Worker(lessor, executor, root / "logs", options, woken=woken)
        stop = worker.stop
        signal.signal(signal.SIGTERM, lambda *_: stop())
        signal.signal(signal.SIGINT, lambda *_: stop())
        err.print(
            f"worker {options.name}: {slots} slots, server {url}"
            + (f", queue {queue}" if queue else ""),
            highlight=False,
        )
        worker.run()
    finally:
        lessor.close()
        shutil.rmtree(root, ignore_errors=True)
    err.print(f"worker {options.name}: {worker.ended} jobs ended here; bye", highlight=False)
