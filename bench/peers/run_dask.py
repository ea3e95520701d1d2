"""Run a bench/shapes.py DAG on Dask distributed (a LocalCluster, or dask-jobqueue's
SLURMCluster) and print one JSON line.

    bench/peers/.venvs/dask/bin/python bench/peers/run_dask.py --shape layered --jobs 10000
    bench/peers/.venvs/dask-jobqueue/bin/python bench/peers/run_dask.py --cluster slurm ...

The cluster is Dask's own ``LocalCluster`` on 127.0.0.1: the scheduler in this process
(its event loop in a thread, as ``LocalCluster`` runs it), ``--workers`` worker processes
of one thread each (each under its nanny), no dashboard, spill files in a temporary folder.
It is started, its workers are connected and have run a warm-up task each before the clock
starts, as Orchid's agents are started before its clock.

With ``--cluster slurm`` the workers are dask-jobqueue's instead: a ``SLURMCluster`` (the
scheduler in this process on 127.0.0.1) scaled to one Slurm job (partition ``debug``,
``--workers`` CPUs and as many worker processes of one thread each), submitted with
sbatch to the cluster SLURM_CONF names (the bench's single-node Slurm). The workers run
under slurmstepd, so their memory and CPU are not in the row.

The graph is Dask's own: one task per job whose arguments are its parents' keys, so the
scheduler resolves every dependency (a parent's result is passed to the child, which
ignores it). ``--api graph`` (default) hands the whole graph over in one ``Client.get``;
``--api submit`` makes one ``Client.submit`` per job with its parents' futures as
arguments, the way a user writing futures by hand would. Dask does not fuse tasks of a
graph given this way, so every job is its own task.

- ``submit_s``: building the graph and handing it to the client (the scheduler takes a
  graph in after ``Client.get`` returns, so that work counts in ``run_s``);
- ``run_s``: from then until every task has finished and its (start, end) times have
  been gathered back from the workers.

Logs go to stderr; stdout holds the JSON line only. The cluster is closed on the way out,
also on a timeout, an error, SIGTERM or SIGINT.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402


def dask_key(job: str) -> str:
    """``L3-17`` for the job ``L3/17``: Dask groups tasks by the key's part before the first
    dash (its "prefix", here the layer), as it does with its own ``name-token`` keys. A key
    without a dash would be a prefix of its own, and the workers' per-prefix bookkeeping
    grows with the number of prefixes (quadratic over the graph)."""
    return job.replace("/", "-", 1)


def job_key(key: str) -> str:
    return key.replace("-", "/", 1)


def stop_on_sigterm() -> None:
    """SIGTERM (a driver's timeout) unwinds like Ctrl-C, so the cluster is closed."""

    def handler(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def cluster_of(a: Any, tmp: str) -> Any:
    """The cluster of ``--cluster``: its workers are started (or submitted) here."""
    if a.cluster == "local":
        from distributed import LocalCluster

        return LocalCluster(
            n_workers=a.workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            scheduler_port=0,
            dashboard_address=None,
            local_directory=tmp,
            silence_logs=logging.WARNING,
        )
    from dask_jobqueue import SLURMCluster

    slurm = SLURMCluster(
        queue="debug",
        cores=a.workers,
        processes=a.workers,
        memory=f"{a.workers}GB",
        walltime="04:00:00",
        python=sys.executable,
        local_directory=tmp,
        log_directory=tmp,
        scheduler_options={"host": "127.0.0.1", "dashboard_address": None},
        job_script_prologue=[f"export PYTHONPATH={os.environ['PYTHONPATH']}"],
        silence_logs=logging.WARNING,
    )
    slurm.scale(jobs=1)
    return slurm


def main() -> None:
    ap = common.parser("Dask distributed")
    ap.add_argument("--api", choices=["graph", "submit"], default="graph")
    ap.add_argument("--cluster", choices=["local", "slurm"], default="local")
    a = ap.parse_args()
    stop_on_sigterm()
    # the workers are new interpreters: they import ``common`` (the payload) by name, as
    # Orchid's workers import ``payload:noop``
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")) if p
    )

    import dask
    import distributed
    from distributed import Client, wait

    with tempfile.TemporaryDirectory(prefix="orchid-peer-dask-") as tmp:
        dask.config.set({"distributed.worker.daemon": True, "temporary-directory": tmp})
        with cluster_of(a, tmp) as cluster, Client(cluster) as client:
            client.wait_for_workers(a.workers, timeout=120)
            # a warm-up task on each worker (imports the payload), as run_parsl.py does
            warm = [
                client.submit(common.timed, pure=False, workers=[w], allow_other_workers=False)
                for w in client.scheduler_info()["workers"]
            ]
            client.gather(warm)
            del warm
            outcome: dict[str, Any] = {}

            def run() -> tuple[float, float, dict[str, common.Span]]:
                t0 = time.time()
                if a.api == "graph":
                    dsk = {
                        dask_key(job): (common.timed, *map(dask_key, parents))
                        for job, parents in common.graph(a.shape, a.jobs, a.seed)
                    }
                    futures = client.get(dsk, list(dsk), sync=False)
                    keys = [job_key(k) for k in dsk]
                else:
                    by_key: dict[str, Any] = {}
                    for job, parents in common.graph(a.shape, a.jobs, a.seed):
                        by_key[job] = client.submit(
                            common.timed,
                            *(by_key[p] for p in parents),
                            key=dask_key(job),
                            pure=False,
                        )
                    keys, futures = list(by_key), list(by_key.values())
                t1 = time.time()
                with contextlib.suppress(TimeoutError):  # what is done by then is counted
                    wait(futures, timeout=max(1.0, a.timeout - (t1 - t0)))
                done = {f for f in futures if f.done()}
                not_done = len(futures) - len(done)
                spans: dict[str, common.Span] = {}
                finished = [(k, f) for k, f in zip(keys, futures, strict=True) if f in done]
                ok = [(k, f) for k, f in finished if f.status == "finished"]
                for (k, _f), span in zip(ok, client.gather([f for _k, f in ok]), strict=True):
                    spans[k] = tuple(span)
                t2 = time.time()
                outcome["ran"] = len(spans)
                if not_done:
                    outcome["status"] = "timeout"
                elif len(ok) < len(finished):
                    outcome["status"] = "failed"
                return t1 - t0, t2 - t1, spans

            row = common.measure("dask" if a.cluster == "local" else "dask-jobqueue", a, run)
    version = f"dask {dask.__version__}, distributed {distributed.__version__}"
    if a.cluster == "slurm":
        import dask_jobqueue

        version += f", dask-jobqueue {dask_jobqueue.__version__}"
    row.update(version=version, api=a.api, executor=a.cluster)
    if "status" in outcome:
        row["status"] = f"{outcome['status']}, {outcome['ran']}/{a.jobs} jobs ran"
    common.benchkit.emit(row)


if __name__ == "__main__":
    main()
