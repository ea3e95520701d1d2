"""Crash safety under fire: agents SIGKILLed every few seconds, PostgreSQL restarted mid-run.

A layered job DAG (``bench/shapes.py``) runs on ``--agents`` ``orchid agents`` processes
with the local executor. Every job appends a line to a ledger when it has run
(``payload:ledger``), so every execution is counted, including those an agent's
orphaned worker finished after the agent was killed. Every ``--kill-every`` seconds a
random agent is SIGKILLed and started again; on PostgreSQL the server is restarted once
(``pg_ctlcluster ... restart``) when a third of the jobs are done. The server is a
PostgreSQL cluster of this run's own (``pg_createcluster`` on a free port, dropped
after), so restarting it disturbs nothing else on the machine.

Then it checks: the workflow succeeded; every job has exactly one row, in ``succeeded``;
every job ran at least once; no job started before each of its parents had ended (in
the ledger) and no job was made ready before its parents finished (in the database);
every job that ran more than once had a kill or the restart between two of its runs
(a run in flight when its agent died). ``tests/chaos`` runs this at a small size.

    python bench/chaos.py --db postgres --jobs 20000 --agents 3
    python bench/chaos.py --db sqlite --jobs 20000 --agents 1
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import shapes  # noqa: E402

from orchid.engine.submit import submit  # noqa: E402
from orchid.store.db import Database  # noqa: E402

CLUSTER_PREFIX = "orchid_chaos_"
KEEP_MARK = "orchid-keep"
SLACK_S = 0.05


# --- a PostgreSQL cluster of our own ----------------------------------------------------------


def _pg_version() -> str:
    versions = sorted(os.listdir("/etc/postgresql"))
    if not versions:
        raise RuntimeError("no PostgreSQL installed (/etc/postgresql is empty)")
    return versions[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ctl(*args: str, timeout: float = 120) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=timeout)


def _drop_orphan_clusters(version: str) -> None:
    """Clusters of earlier runs whose process is gone (a run killed before its clean-up)."""
    root = Path("/etc/postgresql") / version
    for conf in root.glob(f"{CLUSTER_PREFIX}*"):
        if (conf / KEEP_MARK).exists():  # kept on purpose (--keep, or a run with problems)
            continue
        try:
            os.kill(int(conf.name.removeprefix(CLUSTER_PREFIX).split("_")[0]), 0)
        except ProcessLookupError:
            with contextlib.suppress(subprocess.SubprocessError):
                _ctl("pg_dropcluster", version, conf.name, "--stop")
        except ValueError:
            continue


@dataclass
class Cluster:
    version: str
    name: str
    port: int
    keep: bool = False  # set to keep it after the run (to look into a problem)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/orchid"

    def restart(self) -> None:
        _ctl("pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, "restart")


@contextlib.contextmanager
def private_cluster(keep: bool = False) -> Iterator[Cluster]:
    """A new PostgreSQL cluster on a free port (trust authentication on 127.0.0.1), with a
    database ``orchid``; stopped and dropped afterwards."""
    version = _pg_version()
    _drop_orphan_clusters(version)
    cluster = Cluster(version, "", 0, keep)
    name = f"{CLUSTER_PREFIX}{os.getpid()}_{random.randrange(10**6)}"
    port = _free_port()
    _ctl(
        "pg_createcluster",
        version,
        name,
        "-p",
        str(port),
        "--",
        "--auth-host=trust",
        "--auth-local=trust",
        "--no-sync",
    )
    try:
        _ctl("pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start")
        admin = sa.create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE orchid"))
        admin.dispose()
        cluster = Cluster(version, name, port, keep)
        yield cluster
    finally:
        if cluster.keep:
            (Path("/etc/postgresql") / version / name / KEEP_MARK).touch()
            print(
                f"kept the cluster {version}/{name} on port {port} "
                f"(pg_dropcluster {version} {name} --stop removes it)",
                file=sys.stderr,
            )
        else:
            with contextlib.suppress(subprocess.SubprocessError):
                _ctl("pg_dropcluster", version, name, "--stop")


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Settings:
    db: str  # sqlite | postgres
    jobs: int
    agents: int
    kill_every: float = 2.0
    pause: float = 0.01  # seconds each job sleeps: jobs are in flight when agents die
    lease: float = 3.0
    workers: int = 2
    timeout: float = 600.0
    seed: int = 7
    restart_postgres: bool = True


@dataclass
class Report:
    db: str
    jobs: int
    agents: int
    status: str = "?"
    wall_s: float = 0.0
    executions: int = 0
    duplicates: int = 0
    kills: list[float] = field(default_factory=list)
    restarts: list[tuple[float, float]] = field(default_factory=list)  # (start, end)
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "system": "orchid",
            "bench": "chaos",
            "db": self.db,
            "jobs": self.jobs,
            "agents": self.agents,
            "status": self.status,
            "wall_s": round(self.wall_s, 2),
            "executions": self.executions,
            "duplicates": self.duplicates,
            "kills": len(self.kills),
            "postgres_restarts": len(self.restarts),
            "problems": self.problems[:20],
        }


def template(jobs: int, seed: int, pause: float) -> tuple[dict[str, Any], list[str]]:
    lines = []
    for group, name, parents in shapes.generate("layered", jobs, seed):
        line: dict[str, Any] = {"work": group, "name": name, "args": {"pause": pause}}
        if parents:
            line["parents"] = [f"{g}/{n}" for g, n in parents]
        lines.append(json.dumps(line))
    t = {
        "name": "chaos",
        "works": [
            {"name": g, "function": "payload:ledger", "jobs": "from_file", "retries": 0}
            for g in shapes.groups("layered")
        ],
        "jobs_file": "jobs.jsonl",
    }
    return t, lines


class Agents:
    """The agent processes: started, SIGKILLed, started again, stopped."""

    def __init__(self, url: str, home: Path, ledger: Path, s: Settings) -> None:
        self.url, self.home, self.s = url, home, s
        self.env = {
            **os.environ,
            "ORCHID_HOME": str(home),
            "ORCHID_EXECUTOR": "local",
            "ORCHID_WORKERS": str(s.workers),
            "ORCHID_LEASE_SECONDS": str(s.lease),
            "ORCHID_POLL_INTERVAL": "0.2",
            "ORCHID_LEDGER": str(ledger),
            "ORCHID_ENV_PASSTHROUGH": "ORCHID_LEDGER",  # jobs get only what is named for them
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(BENCH.parent / "src"), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0
        for _ in range(s.agents):
            self.procs.append(self._start())

    def _start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = (self.home / f"agent{self.started}.log").open("wb")
        return subprocess.Popen(
            [sys.executable, "-m", "orchid.cli.main", "agents", "--db", self.url],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill_one(self, rng: random.Random) -> int:
        """SIGKILL a random agent and start another in its place; return the new one's pid."""
        i = rng.randrange(len(self.procs))
        p = self.procs[i]
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
        p.wait(30)
        self.procs[i] = self._start()
        return self.procs[i].pid

    def died(self) -> list[int]:
        """Agents that exited by themselves (they must not)."""
        return [p.returncode for p in self.procs if p.poll() is not None]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def run(
    s: Settings,
    url: str,
    home: Path,
    restart: Callable[[], None] | None,
    prepare: Callable[[Database], None] | None = None,
) -> Report:
    """One chaos run against the database at ``url``; ``restart`` restarts its server;
    ``prepare`` is called on the migrated database first (the tests audit transitions)."""
    report = Report(s.db, s.jobs, s.agents)
    ledger = home / "ledger.txt"
    db = Database(url)
    db.upgrade()
    if prepare is not None:
        prepare(db)
    raw, lines = template(s.jobs, s.seed, s.pause)
    wf = submit(db, raw, base_dir=BENCH, now=time.time(), job_lines=lines)
    rng = random.Random(s.seed)
    t0 = time.time()
    agents = Agents(url, home, ledger, s)
    try:
        # an agent lives kill_every seconds once it runs (its start-up does not count, or
        # on a slow machine a lone agent would be killed before it does anything)
        next_kill = _running(db, agents.procs[-1].pid) + s.kill_every
        deadline = time.monotonic() + s.timeout
        while time.monotonic() < deadline:
            status, done = _progress(db, wf)
            if status not in (None, "pending", "running"):
                report.status = status
                break
            if restart is not None and not report.restarts and done >= s.jobs / 3:
                began = time.time()
                restart()
                report.restarts.append((began, time.time()))
            if time.monotonic() >= next_kill:
                report.kills.append(time.time())
                pid = agents.kill_one(rng)
                next_kill = _running(db, pid) + s.kill_every
            dead = agents.died()
            if dead:
                report.problems.append(f"agents exited by themselves with {dead}; see {home}")
                break
            time.sleep(0.05)
        else:
            report.status = "timeout"
        report.wall_s = time.time() - t0
    finally:
        agents.stop()
    _settle(ledger)
    _check(db, wf, ledger, report)
    db.dispose()
    return report


def _running(db: Database, pid: int, limit_s: float = 60.0) -> float:
    """Wait until the agent process ``pid`` has reported in (its heartbeat); when it did
    (``time.monotonic()``)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with contextlib.suppress(sa.exc.OperationalError), db.engine.connect() as conn:
            if conn.execute(
                sa.text("SELECT count(*) FROM agents WHERE pid = :p"), {"p": pid}
            ).scalar_one():
                break
        time.sleep(0.05)
    return time.monotonic()


def _progress(db: Database, wf: int) -> tuple[str | None, int]:
    """The workflow's status and how many jobs succeeded (None: the database is away)."""
    try:
        with db.engine.connect() as conn:
            status = conn.execute(
                sa.text("SELECT status FROM workflows WHERE id = :i"), {"i": wf}
            ).scalar()
            done = conn.execute(
                sa.text(
                    "SELECT count(*) FROM jobs WHERE workflow_id = :i AND status = 'succeeded'"
                ),
                {"i": wf},
            ).scalar_one()
        return status, int(done)
    except sa.exc.OperationalError:
        return None, 0


def _settle(ledger: Path, quiet_s: float = 1.0, limit_s: float = 30.0) -> None:
    """Orphaned workers finish the job they had; wait until the ledger stops growing."""
    deadline = time.monotonic() + limit_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        size = ledger.stat().st_size if ledger.exists() else 0
        if size != last:
            last, since = size, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.1)


def _check(db: Database, wf: int, ledger: Path, report: Report) -> None:
    problems = report.problems
    if report.status != "succeeded":
        problems.append(f"the workflow ended {report.status}, not succeeded")
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT w.name || '/' || j.name, j.id, j.status, j.ready_at, j.finished_at "
                "FROM jobs j JOIN works w ON w.id = j.work_id WHERE j.workflow_id = :i"
            ),
            {"i": wf},
        ).all()
        edges = conn.execute(
            sa.text(
                "SELECT e.parent_id, e.child_id FROM job_edges e "
                "JOIN jobs c ON c.id = e.child_id WHERE c.workflow_id = :i"
            ),
            {"i": wf},
        ).all()
    names = {r[1]: r[0] for r in rows}
    if len(rows) != report.jobs or len(set(names.values())) != report.jobs:
        problems.append(f"{len(rows)} job rows for {report.jobs} jobs")
    not_done = [r[0] for r in rows if r[2] != "succeeded"]
    if not_done:
        problems.append(f"{len(not_done)} jobs did not succeed, e.g. {not_done[:5]}")
    ready = {r[1]: r[3] for r in rows}
    finished = {r[1]: r[4] for r in rows}
    early = [
        (names[p], names[c])
        for p, c in edges
        if ready[c] is not None and (finished[p] is None or ready[c] < finished[p])
    ]
    if early:
        problems.append(f"{len(early)} jobs made ready before a parent finished, e.g. {early[:3]}")

    runs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for line in ledger.read_text().splitlines() if ledger.exists() else []:
        name, _attempt, _pid, start, end = line.split()
        runs[name].append((float(start), float(end)))
    report.executions = sum(len(r) for r in runs.values())
    never = [n for n in names.values() if n not in runs]
    if never:
        problems.append(f"{len(never)} jobs never ran to the end, e.g. {never[:5]}")
    started_early = [
        (names[p], names[c])
        for p, c in edges
        if runs.get(names[c])
        and runs.get(names[p])
        and min(s for s, _ in runs[names[c]]) < min(e for _, e in runs[names[p]])
    ]
    if started_early:
        problems.append(
            f"{len(started_early)} jobs started before a parent ended, e.g. {started_early[:3]}"
        )
    disruptions = sorted([*report.kills, *(t for pair in report.restarts for t in pair)])
    unexplained = []
    for name, executions in runs.items():
        if len(executions) < 2:
            continue
        report.duplicates += len(executions) - 1
        starts = sorted(s for s, _ in executions)
        for before, after in itertools.pairwise(starts):
            # the earlier run was in flight at the disruption (a worker may start a job
            # handed over just before its agent died, a few milliseconds after)
            if not any(before - SLACK_S <= t <= after for t in disruptions):
                unexplained.append(name)
                break
    if unexplained:
        problems.append(
            f"{len(unexplained)} jobs ran twice with no kill or restart in between, "
            f"e.g. {unexplained[:5]}"
        )


@contextlib.contextmanager
def database(
    kind: str, home: Path, keep: bool = False
) -> Iterator[tuple[str, Callable[[], None] | None, Cluster | None]]:
    """(URL, restart, cluster) of a fresh database of the kind asked for."""
    if kind == "sqlite":
        yield f"sqlite:///{home / 'orchid.db'}", None, None
        return
    with private_cluster(keep) as cluster:
        yield cluster.url, cluster.restart, cluster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--kill-every", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--tmp", default=str(BENCH / ".work"))
    ap.add_argument("--keep", action="store_true", help="keep the files and the cluster")
    a = ap.parse_args()
    s = Settings(a.db, a.jobs, a.agents, kill_every=a.kill_every, timeout=a.timeout)
    Path(a.tmp).mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="orchid-chaos-", dir=a.tmp))
    with database(a.db, home, a.keep) as (url, restart, cluster):
        report = run(s, url, home, restart if s.restart_postgres else None)
        if cluster is not None and report.problems:
            cluster.keep = True
    row = report.as_json()
    print(json.dumps(row), flush=True)
    print(
        f"\n{row['db']}: {row['jobs']:,} jobs, {row['agents']} agents, {row['kills']} kills, "
        f"{row['postgres_restarts']} PostgreSQL restarts: {row['status']} in {row['wall_s']} s; "
        f"{row['executions']:,} executions ({row['duplicates']} duplicates, each of a job in "
        f"flight at a kill or restart)"
        if not row["problems"]
        else f"\nPROBLEMS: {row['problems']}"
    )
    if report.problems:
        print(f"(files kept in {home})")
        sys.exit(1)
    import shutil

    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
