"""Run a bench/shapes.py DAG on Parsl (HighThroughputExecutor) and print one JSON line.

    bench/peers/.venvs/parsl/bin/python bench/peers/run_parsl.py --shape layered --jobs 10000
    ... run_parsl.py --provider slurm ...   # the worker pool in a Slurm job (SLURM_CONF)

Parsl's ``HighThroughputExecutor`` with a ``LocalProvider`` of one block: this process
runs the DataFlowKernel, which starts the interchange (a process of its own) and one
worker pool (a manager process, adopted by this one so it counts in the memory and CPU) with ``--workers`` worker processes, all on 127.0.0.1
(``address``), with the executor's default settings otherwise (CurveZMQ encryption on, no
prefetch); no monitoring, no usage tracking, the run folder in a temporary folder. The
workers have registered and run a warm-up task each before the clock starts.

With ``--provider slurm`` the worker pool is one block of Parsl's ``SlurmProvider``
instead: one Slurm job (partition ``debug``, one node, ``--workers`` CPUs, not exclusive)
submitted with sbatch when Parsl loads, whose workers reach the interchange on 127.0.0.1
(the bench's single-node Slurm); the clock starts once they have registered and run their
warm-up tasks, as with the local provider. The pool then runs under slurmstepd, so its
memory and CPU are not in the row.

Each job is one call of a ``python_app`` whose arguments are its parents' ``AppFuture``s,
so Parsl's DataFlowKernel holds a job back until its parents have ended (and passes their
results, which the payload ignores).

- ``submit_s``: calling the app once per job, parents first (Parsl has no whole-graph
  submission; each call returns at once);
- ``run_s``: from then until every app has finished and its (start, end) times are back.

Parsl's logs go to its run folder; stdout holds the JSON line only (the file descriptor is
pointed at stderr while Parsl runs, since its processes inherit it). Everything Parsl
started is stopped by ``DataFlowKernel.cleanup`` on the way out, also on a timeout, an
error, SIGTERM or SIGINT.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[IO[str]]:
    """Point file descriptor 1 at stderr (for this process and every child it starts) and
    yield a stream on the real stdout, for the JSON line."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real = os.fdopen(saved, "w")
    try:
        yield real
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        real.close()


def adopt_orphans() -> None:
    """Make this process the reaper of its orphaned descendants (Linux ``prctl``): the
    ``LocalProvider`` starts the worker pool in the background of a shell that exits, so
    without this the pool would be re-parented to init and its memory and CPU would not
    count in the row."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def stop_on_sigterm() -> None:
    """SIGTERM (a driver's timeout) unwinds like Ctrl-C, so Parsl is cleaned up."""

    def handler(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def provider(a: Any) -> Any:
    """One block of ``--workers`` workers: here, or in one Slurm job."""
    from parsl.providers import LocalProvider, SlurmProvider

    if a.provider == "local":
        return LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1)
    # the batch job finds Parsl's worker pool and the payload as this process does
    paths = f"export PATH={os.environ['PATH']}; export PYTHONPATH={os.environ['PYTHONPATH']}"
    return SlurmProvider(
        partition="debug",
        nodes_per_block=1,
        cores_per_node=a.workers,
        mem_per_node=2,
        init_blocks=1,
        min_blocks=1,
        max_blocks=1,
        walltime="04:00:00",
        exclusive=False,
        worker_init=paths,
        cmd_timeout=60,
    )


def config(a: Any, run_dir: str) -> Any:
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor

    return Config(
        executors=[
            HighThroughputExecutor(
                label="htex",
                address="127.0.0.1",
                loopback_address="127.0.0.1",
                max_workers_per_node=a.workers,
                cores_per_worker=1,
                provider=provider(a),
                worker_logdir_root=run_dir,
            )
        ],
        run_dir=run_dir,
        strategy="none",
        usage_tracking=0,
    )


def wait_for_workers(executor: Any, workers: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while sum(m["worker_count"] for m in executor.connected_managers()) < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"Parsl's workers did not register within {timeout:.0f} s")
        time.sleep(0.1)


def main() -> None:
    ap = common.parser("Parsl")
    ap.add_argument("--provider", choices=["local", "slurm"], default="local")
    a = ap.parse_args()
    stop_on_sigterm()
    adopt_orphans()
    # the workers are new interpreters: they import ``common`` (the payload) by name, as
    # Orchid's workers import ``payload:noop``
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")) if p
    )

    # Parsl starts its interchange and worker pool by their script names, from the venv
    os.environ["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), os.environ["PATH"]))

    import parsl

    outcome: dict[str, Any] = {}
    with (
        stdout_to_stderr() as out,
        tempfile.TemporaryDirectory(prefix="orchid-peer-parsl-") as tmp,
    ):
        dfk = parsl.load(config(a, tmp))
        try:
            app = parsl.python_app(common.timed, executors=["htex"])
            wait_for_workers(dfk.executors["htex"], a.workers, 120)
            for f in [app() for _ in range(a.workers)]:
                f.result(timeout=120)

            def run() -> tuple[float, float, dict[str, common.Span]]:
                t0 = time.time()
                futures: dict[str, Any] = {}
                for job, parents in common.graph(a.shape, a.jobs, a.seed):
                    futures[job] = app(*(futures[p] for p in parents))
                t1 = time.time()
                done, not_done = concurrent.futures.wait(
                    futures.values(), timeout=max(1.0, a.timeout - (t1 - t0))
                )
                spans: dict[str, common.Span] = {}
                failed = 0
                for job, f in futures.items():
                    if f in done:
                        if f.exception() is None:
                            spans[job] = tuple(f.result())
                        else:
                            failed += 1
                t2 = time.time()
                outcome["ran"] = len(spans)
                if not_done:
                    outcome["status"] = "timeout"
                elif failed:
                    outcome["status"] = "failed"
                return t1 - t0, t2 - t1, spans

            system = "parsl" if a.provider == "local" else "parsl-slurm"
            row = common.measure(system, a, run)
        finally:
            dfk.cleanup()
            parsl.clear()
        row["version"] = f"parsl {parsl.__version__}"
        row["executor"] = a.provider
        if "status" in outcome:
            row["status"] = f"{outcome['status']}, {outcome['ran']}/{a.jobs} jobs ran"
        out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
