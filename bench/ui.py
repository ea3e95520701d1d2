"""Benchmark the monitor: every page of a workflow with a million jobs, served by `orchid server`.

Builds the workflow with bulk inserts through the store (five works of 200,000 jobs each,
a mix of statuses and timings, the work links a job DAG would record, a few hundred
events and a catalog of files), starts `orchid server` on 127.0.0.1 over that database,
logs in through the form like a browser, then times each page (the whole response):
one warm-up request, then ``--repeat`` timed ones. Prints one JSON line per page and a
table. Traffic goes to 127.0.0.1 only; the server is stopped by its PID at the end.

    python bench/ui.py --jobs 1000000 --files 426331 [--db postgres]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from orchid.core.states import FileStatus
from orchid.store import catalog, events, workflows, works
from orchid.store import jobs as job_store
from orchid.store.catalog import NewFile
from orchid.store.db import Database
from orchid.store.tables import jobs
from orchid.store.tables import works as works_table

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
WORKS = ["isr", "characterize", "calibrate", "coadd", "measure"]
T0 = time.time() - 4 * 3600  # the workflow started four hours ago
# the status of job i by i % 20: mostly done, some failed, a running front, the rest waiting
MIX = (
    ["succeeded"] * 12 + ["failed", "cancelled", "running", "submitted", "ready"] + ["waiting"] * 3
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(db: Database, n_jobs: int, n_files: int) -> tuple[int, dict[str, float]]:
    """The big workflow; returns its id and how long each part took."""
    took: dict[str, float] = {}
    t = time.perf_counter()
    template = {
        "name": "million",
        "description": "a Rubin-like production of a million jobs",
        "parameters": {"visits": 1000, "detectors": 189},
        "works": [{"name": w, "noop": True, "jobs": "from_file"} for w in WORKS],
        "jobs_file": "jobs.jsonl",
    }
    per_work = n_jobs // len(WORKS)
    with db.begin() as conn:
        wf = workflows.create(
            conn,
            name="million",
            owner="alice",
            template=template,
            params=template["parameters"],
            base_dir=None,
            now=T0,
        )
        ids = works.create(conn, wf, [(w, 0) for w in WORKS], frozenset(WORKS), T0)
        workflows.set_links(conn, wf, list(itertools.pairwise(WORKS)))
        for wid in ids.values():
            args = [{"visit": i // 189, "detector": i % 189} for i in range(per_work)]
            job_store.insert_ready(conn, wf, wid, args, 2, T0)
            events.emit(conn, wf, "work.running", {"work_id": wid, "jobs": per_work}, T0)
        for k in range(300):
            events.emit(conn, wf, "command.suspend" if k % 2 else "command.resume", {}, T0 + k)
    took["insert_jobs_s"] = time.perf_counter() - t
    t = time.perf_counter()
    case = sa.case(
        *((jobs.c.id % len(MIX) == i, s) for i, s in enumerate(MIX) if s != "ready"), else_="ready"
    )
    done = jobs.c.status.in_(["succeeded", "failed", "cancelled"])
    with db.begin() as conn:  # a realistic mix of statuses and timings (benchmark set-up only)
        conn.execute(sa.update(jobs).where(jobs.c.workflow_id == wf).values(status=case))
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.workflow_id == wf, done)
            .values(
                attempt=1,
                started_at=T0 + jobs.c.id * 0.01,
                finished_at=T0 + jobs.c.id * 0.01 + 3.0,
                exit_code=sa.case((jobs.c.status == "failed", 1), else_=0),
            )
        )
        conn.execute(
            sa.update(works_table)
            .where(works_table.c.workflow_id == wf)
            .values(status="running", n_jobs=per_work, remaining=per_work // 3, started_at=T0)
        )
        workflows.set_status(conn, wf, "running", "", T0)  # type: ignore[arg-type]
    took["set_statuses_s"] = time.perf_counter() - t
    t = time.perf_counter()
    if n_files:
        with db.begin() as conn:
            cid = catalog.add_collection(
                conn, wf, scope="data18_13TeV", name="raw.daq", manager="tapesim", now=T0
            )
            statuses = [
                FileStatus.DELETED,
                FileStatus.PROCESSED,
                FileStatus.PROCESSING,
                FileStatus.AVAILABLE,
                FileStatus.STAGING,
                FileStatus.NEW,
            ]
            step = max(n_files // 120, 1)
            for start in range(0, n_files, step):
                k = start // step
                status = statuses[min(k * len(statuses) // 121, len(statuses) - 1)]
                batch = [
                    NewFile(f"f{i:07d}", 2_000_000_000, status)
                    for i in range(start, min(start + step, n_files))
                ]
                catalog.add_files(conn, cid, batch, now=T0 + 60 * k)
    took["insert_files_s"] = time.perf_counter() - t
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    return wf, took


def timed(client: httpx.Client, path: str, repeat: int) -> dict[str, Any]:
    r = client.get(path)  # warm-up (and the status check)
    status, size = r.status_code, len(r.content)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = client.get(path)
        _ = r.content
        times.append(time.perf_counter() - t)
        status = max(status, r.status_code)
    return {
        "status": status,
        "bytes": size,
        "p50_ms": round(1000 * statistics.median(times), 1),
        "max_ms": round(1000 * max(times), 1),
    }


def first_event(client: httpx.Client, path: str) -> dict[str, Any]:
    t = time.perf_counter()
    with client.stream("GET", path) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                return {
                    "status": r.status_code,
                    "bytes": len(line),
                    "p50_ms": round(1000 * (time.perf_counter() - t), 1),
                    "max_ms": None,
                }
    return {"status": 0, "bytes": 0, "p50_ms": None, "max_ms": None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=426_331)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    load = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="orchid-bench-ui-"))
    pg_name = None
    if a.db == "postgres":
        pg_name = f"orchid_bench_ui_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{pg_name}"')
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + pg_name
    else:
        url = f"sqlite:///{tmp / 'orchid.db'}"
    server = None
    try:
        db = Database(url)
        db.upgrade()
        wf, took = build(db, a.jobs, a.files)
        with db.engine.connect() as conn:
            some_job = conn.execute(sa.select(sa.func.max(jobs.c.id))).scalar_one() // 2
            work_id = conn.execute(sa.select(sa.func.min(works_table.c.id))).scalar_one()
        db.dispose()
        env = {**os.environ, "ORCHID_DB_URL": url, "ORCHID_HOME": str(tmp)}
        token = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchid.cli.main",
                "token",
                "create",
                "--user",
                "alice",
                "--admin",
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout.strip()
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "orchid.cli.main", "server", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("orchid server did not start")
            time.sleep(0.2)
        browser = httpx.Client(base_url=base, timeout=60)
        r = browser.post("/ui/login", data={"token": token}, headers={"Origin": base})
        assert r.status_code == 303, r.text
        page = browser.get(f"/ui/workflows/{wf}/jobs").text
        after = re.findall(r'after=(\d+)" rel="next"', page)[0]
        pages = {
            "workflows list": "/ui/",
            "workflow (graph, works, timeline)": f"/ui/workflows/{wf}",
            "jobs, first page": f"/ui/workflows/{wf}/jobs",
            "jobs, next page": f"/ui/workflows/{wf}/jobs?after={after}",
            "jobs, last page": f"/ui/workflows/{wf}/jobs?last=true",
            "jobs of a work, failed": f"/ui/workflows/{wf}/jobs?work={work_id}&status=failed",
            "jobs, page in the middle": f"/ui/workflows/{wf}/jobs?after={some_job}",
            "one job": f"/ui/jobs/{some_job}",
            "data carousel": f"/ui/workflows/{wf}/data",
            "graph.svg": f"/ui/workflows/{wf}/graph.svg",
        }
        api = httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"})
        rows = []
        for name, path in pages.items():
            rows.append({"page": name, **timed(browser, path, a.repeat)})
        rows.append(
            {"page": "live feed, first summary", **first_event(browser, f"/ui/workflows/{wf}/live")}
        )
        for name, path in (
            ("API workflow", f"/api/v1/workflows/{wf}"),
            ("API graph", f"/api/v1/workflows/{wf}/graph"),
            ("/metrics", "/metrics"),
        ):
            rows.append({"page": name, **timed(api, path, a.repeat)})
        common = {
            "bench": "ui",
            "db": a.db,
            "jobs": a.jobs,
            "files": a.files,
            "workflow": wf,
            "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
            "load_before": [round(x, 2) for x in load],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            **{k: round(v, 1) for k, v in took.items()},
        }
        for row in rows:
            print(json.dumps({**common, **row}))
        print(
            f"\n{a.jobs:,} jobs, {a.files:,} files, {a.db}; load {common['load_before']} → {common['load_after']}"
        )
        print(f"{'page':36} {'status':>6} {'KiB':>8} {'p50 ms':>8} {'max ms':>8}")
        for row in rows:
            mx = "" if row["max_ms"] is None else f"{row['max_ms']:.1f}"
            print(
                f"{row['page']:36} {row['status']:>6} {row['bytes'] / 1024:>8.1f} {row['p50_ms']:>8.1f} {mx:>8}"
            )
        worst = max(r["max_ms"] or r["p50_ms"] for r in rows)
        print(f"slowest: {worst:.0f} ms ({'under' if worst < 1000 else 'OVER'} 1 s)")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
        if pg_name:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)  # the SQLite database: hundreds of MB


if __name__ == "__main__":
    main()
