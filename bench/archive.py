"""Does archiving slow running workflows down? A job DAG run alone, then while archiving.

Issue 21 asks that archiving ended workflows while a 10,000-job workflow runs slow it by
less than 10%. This script makes ``--fillers`` ended workflows of ``--filler-jobs`` jobs
each (their end moved ten days back), then runs ``--dags`` ``--jobs``-job layered DAGs one after another
(``bench/shapes.py``, the null executor; one DAG alone lasts about a second, too short
for a poll of the agent loop) through one ``orchid agents`` process, in two arms:

- A, ``alone``: the agents without retention;
- B, ``archiving``: the same, while the fillers are archived, either by the agents' own
  archivist (``--mode agent``: ``[retention] archive_after = 1d``, its ``share`` of the
  loop) or by an ``orchid archive --older-than 1d`` process beside them (``--mode cli``).

Every run has a fresh database with its own fillers. ``--pairs N`` runs N A/B pairs
(alternating AB and BA), each followed by an A/A pair that measures the noise
(``benchkit.pair_schedule``), and reports per pair the ratio B/A (A/A: second/first) of
``run_s``, from the first DAG's submission to the last one's end, and of
``agents_cpu_s``, the CPU seconds the agents process used meanwhile (less sensitive than
times to what else the machine runs; in agent mode it includes the archiving itself);
then per measure the median ratio, its spread, and whether the A/B median lies within
the A/A range. ``archived_rows`` is how many filler rows left the live tables during the
run (0 while the archiver is still writing the archive files; ``archive_mb`` says how
much it wrote, so far as the run saw: archive files of earlier runs are not there, as
every run has a fresh folder);
``archiver_cpu_s`` the CPU of the ``orchid archive`` process (``--mode cli``) and
``db_cpu_s`` that of the PostgreSQL backends (``--db postgres``).

    python bench/archive.py --jobs 10000 --fillers 4 --filler-jobs 3000 --pairs 6
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit
from dag import BENCH, database, job_lines, scalar, server_cpu, server_cpu_since, template

from orchid.engine.submit import submit
from orchid.store.db import Database

DAY = 86400.0
FIELDS = (
    "pair",
    "arm",
    "mode",
    "db",
    "jobs",
    "dags",
    "run_s",
    "jobs_per_s",
    "agents_cpu_s",
    "archiver_cpu_s",
    "db_cpu_s",
    "archived_rows",
    "archive_mb",
    "filler_states",
    "status",
    "load",
)
RATIO_FIELDS = ("run_s", "agents_cpu_s", "db_cpu_s")


def environment(a: argparse.Namespace, home: Path, retention: bool) -> dict[str, str]:
    env = {
        **os.environ,
        "ORCHID_HOME": str(home),
        "ORCHID_EXECUTOR": "null",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(BENCH.parent / "src"), os.environ.get("PYTHONPATH", "")) if p
        ),
        "ORCHID_RETENTION_BATCH": str(a.retention_batch),
        "ORCHID_RETENTION_SHARE": str(a.share),
    }
    if retention:
        env["ORCHID_RETENTION_ARCHIVE_AFTER"] = "1d"
    return env


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT if "archive" in p.args else signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def agents(url: str, env: dict[str, str], home: Path, db: Database) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "orchid.cli.main", "agents", "--db", url]
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM agents"))
    proc = start(cmd, env, home / "agents.log")
    if not benchkit.wait_until(lambda: (scalar(db, "SELECT count(*) FROM agents") or 0) >= 1, 60):
        stop([proc])
        raise SystemExit(f"the agents did not start; see {home}/agents.log")
    return proc


def run_dag(db: Database, a: argparse.Namespace, home: Path, jobs: int, seed: int) -> int:
    jobs_file = home / "jobs.jsonl"
    with jobs_file.open("w") as fh:
        fh.writelines(line + "\n" for line in job_lines("layered", jobs, seed))
    with jobs_file.open() as lines:
        return submit(
            db, template("layered", "null"), base_dir=BENCH, now=time.time(), job_lines=lines
        )


def wait_end(db: Database, wf: int, timeout: float) -> bool:
    sql = "SELECT finished_at FROM workflows WHERE id = :i"
    return benchkit.wait_until(lambda: scalar(db, sql, i=wf) is not None, timeout, every=0.05)


def live_rows(db: Database, ids: list[int]) -> int:
    """Rows the fillers still have in the jobs, events and works tables."""
    if not ids:
        return 0
    inside = ",".join(str(i) for i in ids)
    return sum(
        int(scalar(db, f"SELECT count(*) FROM {t} WHERE workflow_id IN ({inside})") or 0)
        for t in ("jobs", "events", "works")
    )


def progress(db: Database, ids: list[int]) -> str:
    """The fillers' archive states: how far archiving got (live, writing, deleting, archived)."""
    inside = ",".join(str(i) for i in ids)
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT coalesce(archive_state, 'live'), count(*) FROM workflows "
                f"WHERE id IN ({inside}) GROUP BY 1 ORDER BY 1"
            )
        )
        return " ".join(f"{state}:{n}" for state, n in rows)


def make_fillers(a: argparse.Namespace, url: str, home: Path, db: Database) -> list[int]:
    proc = agents(url, environment(a, home, retention=False), home, db)
    try:
        ids = [run_dag(db, a, home, a.filler_jobs, seed=100 + k) for k in range(a.fillers)]
        for wf in ids:
            if not wait_end(db, wf, a.timeout):
                raise SystemExit(f"filler workflow {wf} did not end; see {home}/agents.log")
    finally:
        stop([proc])
    with db.begin() as conn:  # ended ten days ago: due for `archive_after = 1d`
        conn.execute(
            sa.text(
                "UPDATE workflows SET finished_at = finished_at - :d WHERE id IN "
                f"({','.join(str(i) for i in ids)})"
            ),
            {"d": 10 * DAY},
        )
    return ids


def one_run(a: argparse.Namespace, archiving: bool) -> dict[str, Any]:
    """One run in a fresh database: fillers made (untimed), then the DAGs, archiving or not."""
    home = Path(tempfile.mkdtemp(prefix="orchid-archive-", dir=a.tmp))
    try:
        with database(a.db, home) as url:
            db = Database(url)
            db.upgrade()
            fillers = make_fillers(a, url, home, db)
            row = measure(a, url, home, db, fillers, archiving)
            db.dispose()
            return row
    finally:
        shutil.rmtree(home, ignore_errors=True)


def measure(
    a: argparse.Namespace, url: str, home: Path, db: Database, fillers: list[int], archiving: bool
) -> dict[str, Any]:
    env = environment(a, home, retention=archiving and a.mode == "agent")
    proc = agents(url, env, home, db)
    procs = [proc]
    before = live_rows(db, fillers)
    try:
        if archiving and a.mode == "cli":
            cmd = [sys.executable, "-m", "orchid.cli.main", "archive", "--older-than", "1d"]
            procs.append(start([*cmd, "--db", url], env, home / "archive.log"))
        cpu0 = benchkit.tree_cpu_s(proc.pid)
        db_cpu0 = server_cpu(db) if a.db == "postgres" else {}
        t0 = time.time()
        submit_s = 0.0
        for _ in range(a.dags):  # one after the other: the round lasts long enough to overlap
            t = time.time()
            wf = run_dag(db, a, home, a.jobs, seed=a.seed)
            submit_s += time.time() - t
            ended = wait_end(db, wf, a.timeout)
            if not ended:
                break
        end = scalar(db, "SELECT finished_at FROM workflows WHERE id = :i", i=wf) or time.time()
        agents_cpu = benchkit.tree_cpu_s(proc.pid) - cpu0
        archiver_cpu = benchkit.tree_cpu_s(procs[1].pid) if len(procs) > 1 else None
        db_cpu = server_cpu_since(db, db_cpu0) if a.db == "postgres" else None
        archived = before - live_rows(db, fillers)
        written = sum(f.stat().st_size for f in (home / "archive").rglob("*") if f.is_file())
        states = progress(db, fillers)
    finally:
        stop(procs)
    status = scalar(db, "SELECT status FROM workflows WHERE id = :i", i=wf) if ended else "timeout"
    return {
        "mode": f"archiving ({a.mode})" if archiving else "alone",
        "db": a.db,
        "jobs": a.jobs,
        "dags": a.dags,
        "submit_s": round(submit_s, 3),
        "run_s": round(end - t0, 3),
        "jobs_per_s": round(a.dags * a.jobs / (end - t0), 1),
        "agents_cpu_s": round(agents_cpu, 2),
        "archiver_cpu_s": None if archiver_cpu is None else round(archiver_cpu, 2),
        "db_cpu_s": None if db_cpu is None else round(db_cpu, 2),
        "archived_rows": archived,
        "archive_mb": round(written / 2**20, 2),
        "filler_states": states,
        "fillers": a.fillers,
        "filler_jobs": a.filler_jobs,
        "share": a.share if a.mode == "agent" else None,
        "status": status,
        "load": benchkit.load(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000, help="jobs of the measured DAG")
    ap.add_argument("--fillers", type=int, default=4, help="ended workflows to archive")
    ap.add_argument("--filler-jobs", type=int, default=3_000, help="jobs of each")
    ap.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="alone/archiving (A/B) pairs, each followed by an alone/alone (A/A) pair",
    )
    ap.add_argument("--dags", type=int, default=3, help="DAGs run one after another per round")
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--mode", choices=["agent", "cli"], default="agent")
    ap.add_argument("--share", type=float, default=0.05, help="[retention] share (agent mode)")
    ap.add_argument("--retention-batch", type=int, default=2000, help="[retention] batch")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--tmp", default=str(BENCH / ".work"))
    a = ap.parse_args()
    gc.freeze()
    Path(a.tmp).mkdir(parents=True, exist_ok=True)
    benchkit.compare_pairs(
        a.pairs,
        lambda pair, kind, arm: {"pair": pair, "kind": kind, "arm": arm, **one_run(a, arm == "B")},
        FIELDS,
        RATIO_FIELDS,
    )


if __name__ == "__main__":
    main()
