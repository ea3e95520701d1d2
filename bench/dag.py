"""Run a generated job DAG through Orchid and measure it: throughput, release latency, memory.

The graph (``bench/shapes.py``) is written as a JSON-lines jobs file (before the clock
starts) and streamed from it into a normal submission, the way a Rubin-size jobs file is; ``--agents K`` ``orchid agents`` processes run it against a
fresh database (an SQLite file in a temporary folder, or a PostgreSQL database created
for the run and dropped after). The agents are started and idle before the clock starts,
as a peer's cluster is.

- ``submit_s``: validating and writing the workflow, its works, jobs and edges;
- ``run_s``: from the commit of the submission to the workflow's end (as the database
  records it); ``wall_s`` = submit_s + run_s; ``jobs_per_s`` = jobs / wall_s;
- ``release_*``: a child's ``ready_at`` minus its last parent's ``finished_at``;
- ``step_*``: a child's start (the executor's ``running`` report; the submission when
  the executor reports none, as ``null``) minus its last parent's end;
- ``peak_rss_mb``: the resident memory of the whole tree (this script, the agents and
  their workers), sampled every 0.2 s;
- ``cpu_s``: CPU seconds the whole tree used from submission to the end (less sensitive
  than the times to what else the machine runs); ``db_cpu_s`` (PostgreSQL) the CPU
  seconds of the server's backends serving the run's database meanwhile;
- ``claim_s``, ``claims``: time the carriers spent in their claim statements (with the
  limits and fair share when quotas are set) and how many claims they made, from the
  agents' own metrics (``orchid agents --metrics-port``).

``--pairs N`` compares a run without quotas (A) against one with the ``--quota`` limits
(or ``--limits``, a realistic set none of which binds) (B): N A/B pairs, alternating
AB and BA, each followed by an A/A pair that measures the noise, every run in a fresh
database; then the ratio B/A (A/A: second/first) of each pair for wall time, CPU time
and claim time, and per measure the median ratio, its spread, and whether the A/B median
lies within the A/A range (``benchkit.pair_schedule``).

Prints one JSON object per line, then a table. Everything it starts stops by itself
(``--timeout``), and it cleans up its databases and files.

    python bench/dag.py --jobs 100000 --shape layered --db sqlite --agents 1 --executor null
    python bench/dag.py --jobs 100000 --db postgres --agents 2 --limits --pairs 4
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.servers

import benchkit
import shapes
from tests import servers

from orchid.engine.submit import submit
from orchid.store.db import Database

BENCH = Path(__file__).resolve().parent
GROUP = "bench"  # the group the workflow is shared with under --limits
# --limits: one of each limit the carrier enforces when it claims (and the queued limit,
# checked at submission), with a weight so that the fair claim runs; none binds
LIMITS = [
    "user:local:running:10000000",
    f"group:{GROUP}:running:10000000",
    "user:local:running:10000000:null",
    "executor:null:running:10000000",
    "user:local:queued:10000000",
    "user:local:weight:2",
    f"group:{GROUP}:weight:3",
]
RATIO_FIELDS = ("wall_s", "run_s", "cpu_s", "db_cpu_s", "all_cpu_s", "claim_s")
PG_SERVER = os.environ.get("ORCHID_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def template(shape: str, executor: str) -> dict[str, Any]:
    work: dict[str, Any] = {"function": "payload:noop"} if executor == "local" else {"noop": True}
    return {
        "name": f"bench-{shape}",
        "works": [{"name": g, "jobs": "from_file", **work} for g in shapes.groups(shape)],
        "jobs_file": "jobs.jsonl",
    }


def job_lines(shape: str, jobs: int, seed: int) -> Iterator[str]:
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    for group, name, parents in shapes.generate(shape, jobs, seed):
        line: dict[str, Any] = {"work": group, "name": name}
        if parents:
            line["parents"] = [f"{g}/{n}" for g, n in parents]
        yield dumps(line)


@contextlib.contextmanager
def database(kind: str, home: Path, keep: bool = False) -> Iterator[str]:
    """A fresh database URL, dropped (PostgreSQL) or deleted (SQLite) afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{home / 'orchid.db'}"
        return
    name = f"orchid_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        servers.drop_orphans(conn, "orchid_bench_")
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        if keep:
            print(f"kept the database {PG_SERVER}/{name}", file=sys.stderr)
        else:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_agents(
    a: argparse.Namespace, url: str, home: Path, ports: list[int] | None = None
) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "ORCHID_HOME": str(home),
        "ORCHID_EXECUTOR": a.executor,
        "ORCHID_WORKERS": str(a.workers),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(BENCH.parent / "src"), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    if a.batch:
        env["ORCHID_BATCH"] = str(a.batch)
    # the defaults a user gets, unless a flag says otherwise (and the row then shows it)
    if a.executor == "local" and a.fresh_processes:
        env["ORCHID_REUSE_WORKERS"] = "0"
    if a.executor == "local" and a.prefetch is not None:
        env["ORCHID_PREFETCH"] = str(a.prefetch)
    procs = []
    for k in range(a.agents):
        cmd = [sys.executable, "-m", "orchid.cli.main", "agents", "--db", url]
        if ports is not None:
            ports.append(free_port())
            cmd += ["--metrics-port", str(ports[-1])]
        if a.py_spy:
            fmt = "raw" if a.py_spy_raw else "flamegraph"
            out = Path(a.py_spy) / f"{a.shape}-{a.db}-{a.executor}-agent{k}.{fmt[:3]}"
            record = ["py-spy", "record", "-r", "200", "--threads", "-f", fmt, "-o", str(out)]
            cmd = [*record, "--", *cmd]
        log = (home / f"agent{k}.log").open("wb")
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def stop_agents(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT if p.args[0] == "py-spy" else signal.SIGTERM)
    deadline = time.monotonic() + 30
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def scalar(db: Database, sql: str, **params: Any) -> Any:
    with db.engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def server_cpu(db: Database) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving this run's database (it runs on
    this machine): the database's share of the work, which the process tree does not show."""
    with db.engine.connect() as conn:
        pids = conn.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        return {int(pid): benchkit.tree_cpu_s(int(pid)) for pid in pids}


def server_cpu_since(db: Database, before: dict[int, float]) -> float:
    """CPU seconds the backends used since ``before`` (backends connected since count from
    their start; a backend that has exited since is lost, as the agents keep theirs)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in server_cpu(db).items())


def claim_metrics(ports: list[int]) -> tuple[float, int]:
    """(seconds, count) of the carriers' claims so far, summed over the agents' metrics."""
    seconds, count = 0.0, 0
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        for line in text.splitlines():
            if 'agent="carrier"' not in line:
                continue
            if line.startswith("orchid_claim_seconds_sum"):
                seconds += float(line.rsplit(" ", 1)[1])
            elif line.startswith("orchid_claim_seconds_count"):
                count += int(float(line.rsplit(" ", 1)[1]))
    return seconds, count


def latencies(db: Database, wf: int) -> tuple[array[float], array[float]]:
    """(release, step) latency of every job that has parents, sorted, in seconds."""
    sql = sa.text(
        "SELECT c.ready_at - max(p.finished_at), "
        "coalesce(c.started_at, c.submitted_at) - max(p.finished_at) "
        "FROM job_edges e JOIN jobs c ON c.id = e.child_id JOIN jobs p ON p.id = e.parent_id "
        "WHERE c.workflow_id = :wf GROUP BY c.id, c.ready_at, c.started_at, c.submitted_at"
    )
    release, step = array("d"), array("d")
    with db.engine.connect() as conn:
        for r, s in conn.execution_options(yield_per=50_000).execute(sql, {"wf": wf}):
            if r is not None:
                release.append(r)
            if s is not None:
                step.append(s)
    return array("d", sorted(release)), array("d", sorted(step))


def set_quotas(db: Database, specs: list[str]) -> None:
    from orchid.store import quotas

    with db.begin() as conn:
        for spec in specs:
            kind, subject, quota, value, *executor = spec.split(":")
            q = quotas.Quota(kind, subject, quota, int(value), *executor).check()
            quotas.set_quota(conn, q, time.time())


def run(a: argparse.Namespace, quota: list[str] | None = None) -> dict[str, Any]:
    """One run in a fresh database, with the ``quota`` specs (default ``--quota``)."""
    quota = a.quota if quota is None else quota
    Path(a.tmp).mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="orchid-bench-", dir=a.tmp))
    row: dict[str, Any] = {
        "system": "orchid",
        "shape": a.shape,
        "jobs": a.jobs,
        "db": a.db,
        "agents": a.agents,
        "quotas": quota,
        "group": a.group,
        "executor": a.executor,
        "workers": a.workers if a.executor == "local" else None,
        "prefetch": (a.prefetch if a.prefetch is not None else "default")
        if a.executor == "local"
        else None,
        "fresh_processes": a.fresh_processes if a.executor == "local" else None,
    }
    procs: list[subprocess.Popen[bytes]] = []
    ports: list[int] | None = [] if a.claim_metrics else None
    try:
        with database(a.db, home, a.keep) as url, benchkit.PeakRss() as rss:
            db = Database(url)
            db.upgrade()
            set_quotas(db, quota)
            procs = start_agents(a, url, home, ports)
            if not benchkit.wait_until(
                lambda: (scalar(db, "SELECT count(*) FROM agents") or 0) >= a.agents, 60
            ):
                raise SystemExit(f"the agents did not start; see {home}/agent*.log")
            jobs_file = home / "jobs.jsonl"
            with jobs_file.open("w") as fh:
                fh.writelines(line + "\n" for line in job_lines(a.shape, a.jobs, a.seed))
            if ports:  # the metrics port answers once the agents run
                benchkit.wait_until(lambda: _answers(ports), 30, every=0.2)
            claim0 = claim_metrics(ports) if ports else (0.0, 0)
            cpu0 = benchkit.tree_cpu_s(os.getpid())
            db_cpu0 = server_cpu(db) if a.db == "postgres" else {}
            t0 = time.time()
            with jobs_file.open() as lines:
                wf = submit(
                    db,
                    template(a.shape, a.executor),
                    base_dir=BENCH,
                    now=t0,
                    job_lines=lines,
                    share_group=a.group,
                    owner_groups=(a.group,) if a.group else (),
                )
            t1 = time.time()

            def ended() -> bool:
                if any(p.poll() is not None for p in procs):
                    raise SystemExit(f"an agent died; see {home}/agent*.log")
                return (
                    scalar(db, "SELECT finished_at FROM workflows WHERE id = :i", i=wf) is not None
                )

            finished = benchkit.wait_until(ended, a.timeout, every=0.05)
            cpu = benchkit.tree_cpu_s(os.getpid()) - cpu0
            if a.db == "postgres":
                row["db_cpu_s"] = round(server_cpu_since(db, db_cpu0), 2)
                row["all_cpu_s"] = round(cpu + row["db_cpu_s"], 2)
            if ports:
                claim1 = claim_metrics(ports)
                row["claim_s"] = round(claim1[0] - claim0[0], 3)
                row["claims"] = claim1[1] - claim0[1]
            stop_agents(procs)
            status = scalar(db, "SELECT status FROM workflows WHERE id = :i", i=wf)
            end = scalar(db, "SELECT finished_at FROM workflows WHERE id = :i", i=wf)
            first = scalar(db, "SELECT min(started_at) FROM jobs WHERE workflow_id = :i", i=wf)
            if not finished:
                status, end = "timeout", time.time()
            row.update(
                submit_s=round(t1 - t0, 3),
                run_s=round(end - t1, 3),
                wall_s=round(end - t0, 3),
                jobs_per_s=round(a.jobs / (end - t0), 1),
                cpu_s=round(cpu, 2),
                status=status,
                # from the submission's commit to the first job's start: the agents' pickup
                first_start_s=round(first - t1, 3) if first is not None else None,
            )
            release, step = latencies(db, wf)
            db.dispose()
        row.update(
            release_p50_ms=benchkit.ms(benchkit.percentile(release, 0.5)),
            release_p99_ms=benchkit.ms(benchkit.percentile(release, 0.99)),
            step_p50_ms=benchkit.ms(benchkit.percentile(step, 0.5)),
            step_p99_ms=benchkit.ms(benchkit.percentile(step, 0.99)),
            peak_rss_mb=round(rss.peak, 1),
            load=benchkit.load(),
        )
    finally:
        stop_agents(procs)
        if a.keep:
            print(f"kept {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    return row


def _answers(ports: list[int]) -> bool:
    try:
        claim_metrics(ports)
    except OSError:
        return False
    return True


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000, help="jobs in the graph (default 10000)")
    ap.add_argument("--shape", choices=shapes.SHAPES, default="layered")
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--agents", type=int, default=1, help="`orchid agents` processes")
    ap.add_argument("--executor", choices=["null", "local"], default="null")
    ap.add_argument("--workers", type=int, default=2, help="local executor workers per agent")
    ap.add_argument("--batch", type=int, default=0, help="rows per claim (ORCHID_BATCH)")
    ap.add_argument(
        "--prefetch",
        type=int,
        default=None,
        help="local: jobs taken ahead (ORCHID_PREFETCH; default: Orchid's default)",
    )
    ap.add_argument(
        "--fresh-processes",
        action="store_true",
        help="local: a new interpreter per job instead of long-lived workers (Orchid's "
        "default is long-lived workers)",
    )
    ap.add_argument(
        "--quota",
        action="append",
        default=[],
        metavar="KIND:SUBJECT:QUOTA:VALUE",
        help="set a limit or weight before the run (repeatable; e.g. user:local:running:100000): "
        "the claim then takes its limits and fair-share path (store.quotas)",
    )
    ap.add_argument(
        "--limits",
        action="store_true",
        help="set a realistic set of limits none of which binds (a running limit per user, "
        "per group, per user on the executor, per executor; a queued limit; weights), and "
        f"share the workflow with the group {GROUP!r}: {' '.join(LIMITS)}",
    )
    ap.add_argument("--group", default=None, help="share the workflow with this group")
    ap.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="compare without quotas (A) against with them (B): this many A/B pairs, each "
        "followed by an A/A pair (2 runs each, fresh databases); ratios per pair",
    )
    ap.add_argument(
        "--claim-metrics",
        action="store_true",
        help="read the carriers' claim time from the agents' metrics (claim_s; on with --pairs)",
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=1, help="runs, one JSON line each")
    ap.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    ap.add_argument("--py-spy", metavar="DIR", help="profile each agent with py-spy into DIR")
    ap.add_argument("--py-spy-raw", action="store_true", help="collapsed stacks, not SVG")
    ap.add_argument(
        "--keep", action="store_true", help="keep the temporary folder and database (debugging)"
    )
    ap.add_argument(
        "--tmp",
        default=str(BENCH / ".work"),
        help="where the run's database and job logs go (default bench/.work)",
    )
    return ap


def main() -> None:
    a = parser().parse_args()
    gc.freeze()  # as the orchid CLI does for its long-running commands
    gc.set_threshold(50_000, 20, 20)
    if a.jobs < shapes.minimum_jobs(a.shape):
        raise SystemExit(f"--jobs: a {a.shape} graph needs at least {shapes.minimum_jobs(a.shape)}")
    if a.agents < 1:
        raise SystemExit("--agents must be at least 1")
    if a.limits:
        a.quota = [*a.quota, *LIMITS]
        a.group = a.group or GROUP
    if a.pairs:
        if not a.quota:
            raise SystemExit("--pairs compares without and with quotas: give --limits or --quota")
        a.claim_metrics = True
        compare(a)
        return
    rows = []
    for _ in range(a.repeat):
        rows.append(run(a))
        benchkit.emit(rows[-1])
    print()
    print(benchkit.table(rows))
    print(f"machine: {benchkit.machine()}; load {benchkit.load()}")


PAIR_FIELDS = (
    "pair",
    "arm",
    "wall_s",
    "run_s",
    "cpu_s",
    "db_cpu_s",
    "all_cpu_s",
    "claim_s",
    "claims",
    "status",
    "load",
)


def compare(a: argparse.Namespace) -> None:
    """``--pairs``: interleaved A/B and A/A pairs; per pair the ratios, then their summary."""

    def one(pair: int, kind: str, arm: str) -> dict[str, Any]:
        row = run(a, a.quota if arm == "B" else [])
        row.update(pair=pair, kind=kind, arm=arm)
        return row

    legend = f"B: {' '.join(a.quota)} (group {a.group}); A: no quotas"
    benchkit.compare_pairs(a.pairs, one, PAIR_FIELDS, RATIO_FIELDS, legend)


if __name__ == "__main__":
    main()
