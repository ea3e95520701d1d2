"""Run a generated job DAG through Orchid workers running as Slurm pilots, and measure it.

One ``orchid server`` and one ``orchid agents`` process share a fresh database (SQLite, or
a PostgreSQL database of the run's own); every work of the graph (``bench/shapes.py``,
each job the function ``payload:noop``, as ``bench/dag.py --executor local`` runs it)
goes to the worker queue ``pilots``. ``orchid worker --slurm P --workers W`` submits the
pilots with sbatch, as a user would; each pilot runs ``orchid worker`` in its Slurm job
and leases the queue's jobs over HTTP, so every job's states are the server's database
rows, as on the agents. A warm-up workflow of ``P × W`` jobs runs on the pilots before
the clock starts (the pilots are running and have imported the payload), as the peers
run a warm-up task on each worker.

By default a single-node Slurm sandbox is started for the run (``tests/executors/
slurm_cluster.py``); ``--slurm-conf`` uses a running cluster instead (``bench/
slurmcompare.py`` starts one for all its systems).

The fields are those of ``bench/dag.py``; ``step_*`` is a child's start (the worker's
``running`` report) minus its last parent's end. ``peak_rss_mb`` and ``cpu_s`` cover the
server, the agents and this script, not the pilots (they run under slurmstepd), as the
peers' rows do not cover their Slurm-run workers.

    python bench/pilots.py --shape layered --jobs 10000
    python bench/pilots.py --shape chain --jobs 1000 --pilots 1 --workers 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchkit
import shapes
from dag import database, job_lines, latencies, scalar, stop_agents

from orchid.engine.submit import submit
from orchid.store import tokens
from orchid.store.db import Database

BENCH = Path(__file__).resolve().parent
QUEUE = "pilots"


def template(shape: str) -> dict[str, Any]:
    work = {"jobs": "from_file", "function": "payload:noop"}
    return {
        "name": f"bench-pilots-{shape}",
        "defaults": {"executor": QUEUE},
        "works": [{"name": g, **work} for g in shapes.groups(shape)],
        "jobs_file": "jobs.jsonl",
    }


def warmup(jobs: int) -> dict[str, Any]:
    return {
        "name": "bench-pilots-warmup",
        "works": [
            {
                "name": "warm",
                "executor": QUEUE,
                "function": "payload:noop",
                "map": {"items": [{"i": i} for i in range(jobs)]},
            }
        ],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def env_of(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHID_")}
    env["ORCHID_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(BENCH.parent / "src"), os.environ.get("PYTHONPATH", "")) if p
    )
    return env


def wait_workflow(db: Database, wf: int, timeout: float, procs: list[Any], home: Path) -> bool:
    def ended() -> bool:
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"the server or the agents died; see {home}/*.log")
        return scalar(db, "SELECT finished_at FROM workflows WHERE id = :i", i=wf) is not None

    return benchkit.wait_until(ended, timeout, every=0.05)


def run(a: argparse.Namespace) -> dict[str, Any]:
    Path(a.tmp).mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="orchid-pilots-", dir=a.tmp))
    bus = f'[engine]\nbus = "{a.bus}"\n\n' if a.bus else ""
    (home / "settings.toml").write_text(f'{bus}[executors.{QUEUE}]\ntype = "worker"\n')
    row: dict[str, Any] = {
        "system": "orchid-pilots",
        "shape": a.shape,
        "jobs": a.jobs,
        "db": a.db,
        "agents": 1,
        "executor": "worker",
        "bus": a.bus or "auto",
        "pilots": a.pilots,
        "workers": a.pilots * a.workers,
        "transport": "http" if a.no_channel else "channel",
    }
    procs: list[subprocess.Popen[bytes]] = []
    array = ""
    env = env_of(home)
    try:
        with database(a.db, home) as url, benchkit.PeakRss() as rss:
            db = Database(url)
            db.upgrade()
            with db.begin() as conn:
                _, token = tokens.create(
                    conn, user="bench", admin=False, groups=[], now=time.time(), worker_queue=QUEUE
                )
            port = free_port()
            orchid = [sys.executable, "-m", "orchid.cli.main"]
            for name, cmd in (
                ("agents", [*orchid, "agents", "--db", url]),
                ("server", [*orchid, "server", "--db", url, "--port", str(port)]),
            ):
                log = (home / f"{name}.log").open("wb")
                procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
            started = benchkit.wait_until(
                lambda: listening(port) and (scalar(db, "SELECT count(*) FROM agents") or 0) > 0,
                60,
            )
            if not started:
                raise SystemExit(f"the server or the agents did not start; see {home}/*.log")
            url_http = f"http://127.0.0.1:{port}"
            if a.direct:  # the same workers, started here instead of as Slurm jobs
                for i in range(a.pilots):
                    log = (home / f"worker{i}.log").open("wb")
                    worker = [*orchid, "worker", "--url", url_http, "--queue", QUEUE,
                              "--workers", str(a.workers), "--name", f"direct{i}",
                              "--scratch", str(home / f"scratch{i}"),
                              *a.worker_args]  # fmt: skip
                    procs.append(
                        subprocess.Popen(
                            worker,
                            env={**env, "ORCHID_TOKEN": token},
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
            done = None if a.direct else subprocess.run(
                [*orchid, "worker", "--slurm", str(a.pilots), "--url", url_http,
                 "--queue", QUEUE, "--workers", str(a.workers),
                 "--idle-exit", str(a.idle_exit), *a.worker_args],
                env={**env, "ORCHID_TOKEN": token}, cwd=home,
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            if done is not None:
                if done.returncode != 0:
                    raise SystemExit(f"orchid worker --slurm failed: {done.stderr.strip()}")
                array = done.stdout.strip()
            warm = submit(db, warmup(a.pilots * a.workers), base_dir=BENCH, now=time.time())
            if not wait_workflow(db, warm, 120, procs, home):
                raise SystemExit(f"the pilots ran no warm-up job in 120 s; see {home}")
            jobs_file = home / "jobs.jsonl"
            with jobs_file.open("w") as fh:
                fh.writelines(line + "\n" for line in job_lines(a.shape, a.jobs, a.seed))
            cpu0 = benchkit.tree_cpu_s(os.getpid())
            t0 = time.time()
            with jobs_file.open() as lines:
                wf = submit(db, template(a.shape), base_dir=BENCH, now=t0, job_lines=lines)
            t1 = time.time()
            finished = wait_workflow(db, wf, a.timeout, procs, home)
            cpu = benchkit.tree_cpu_s(os.getpid()) - cpu0
            status = scalar(db, "SELECT status FROM workflows WHERE id = :i", i=wf)
            end = scalar(db, "SELECT finished_at FROM workflows WHERE id = :i", i=wf)
            if not finished:
                status, end = "timeout", time.time()
            release, step = latencies(db, wf)
            db.dispose()
            row.update(
                submit_s=round(t1 - t0, 3),
                run_s=round(end - t1, 3),
                wall_s=round(end - t0, 3),
                jobs_per_s=round(a.jobs / (end - t0), 1),
                release_p50_ms=benchkit.ms(benchkit.percentile(release, 0.5)),
                release_p99_ms=benchkit.ms(benchkit.percentile(release, 0.99)),
                step_p50_ms=benchkit.ms(benchkit.percentile(step, 0.5)),
                step_p99_ms=benchkit.ms(benchkit.percentile(step, 0.99)),
                cpu_s=round(cpu, 2),
                status=status,
            )
        row.update(peak_rss_mb=round(rss.peak, 1), load=benchkit.load())
    finally:
        if array:
            subprocess.run(["scancel", array], check=False, capture_output=True, timeout=60)
        stop_agents(procs)
        if a.keep:
            print(f"kept {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    return row


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--shape", choices=shapes.SHAPES, default="layered")
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument(
        "--bus",
        choices=["auto", "db", "memory", "postgres"],
        default="db",
        help="the event bus of the server and the agents (default db: the server's records "
        "of reported ends wake the agents of another process on SQLite too)",
    )
    ap.add_argument("--pilots", type=int, default=1, help="Slurm pilot jobs (default 1)")
    ap.add_argument("--workers", type=int, default=2, help="job slots of each pilot")
    ap.add_argument("--idle-exit", type=float, default=60, help="the pilots' --idle-exit")
    ap.add_argument("--slurm-conf", help="use this running cluster, not a sandbox of its own")
    ap.add_argument(
        "--direct",
        action="store_true",
        help="start the workers here, not as Slurm jobs (Orchid's part alone; no Slurm needed)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the run's folder (logs, database)")
    ap.add_argument(
        "--prefetch",
        type=int,
        help="the workers' --prefetch (default: orchid worker's own)",
    )
    ap.add_argument(
        "--no-channel",
        action="store_true",
        help="the workers' --no-channel: HTTP requests, not the worker channel (WebSocket)",
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    ap.add_argument("--tmp", default=str(BENCH / ".work"))
    return ap


def main() -> None:
    a = parser().parse_args()
    a.worker_args = [] if a.prefetch is None else ["--prefetch", str(a.prefetch)]
    a.worker_args += ["--no-channel"] if a.no_channel else []
    if a.jobs < shapes.minimum_jobs(a.shape):
        raise SystemExit(f"--jobs: a {a.shape} graph needs at least {shapes.minimum_jobs(a.shape)}")
    rows = []
    for _ in range(a.repeat):
        if a.slurm_conf or a.direct:
            if a.slurm_conf:
                os.environ["SLURM_CONF"] = a.slurm_conf
            rows.append(run(a))
        else:
            from tests.executors.slurm_cluster import SlurmCluster, available

            why = available()
            if why:
                raise SystemExit(why)
            sandbox = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
            try:
                with SlurmCluster(sandbox, "SchedulerParameters=batch_sched_delay=0\n"):
                    rows.append(run(a))
            finally:
                shutil.rmtree(sandbox, ignore_errors=True)
        benchkit.emit(rows[-1])
    print()
    print(benchkit.table(rows))
    print(f"machine: {benchkit.machine()}; load {benchkit.load()}")


if __name__ == "__main__":
    main()
