"""Benchmark the REST API on loopback: submissions/s and status queries/s with concurrent clients.

Starts `orchid server` on 127.0.0.1 (a fresh SQLite database, or PostgreSQL with
--db postgres: a database created and dropped for the run), creates a token,
then runs two bounded phases with N client threads: submitting a small
template, and reading workflows (GET one, and the list). Prints one JSON line
per phase and a table. Traffic goes to 127.0.0.1 only; everything stops by itself.

    python bench/api.py --clients 8 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

TEMPLATE = {
    "name": "bench",
    "parameters": {"n": 4},
    "works": [
        {"name": "a", "noop": True, "map": {"items": [{"i": 1}, {"i": 2}, {"i": 3}]}},
        {"name": "b", "noop": True, "after": ["a"]},
    ],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def orchid(*args: str, env: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-m", "orchid.cli.main", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.strip()


def phase(name: str, clients: int, seconds: float, call: Any) -> dict[str, Any]:
    """Run `call(client)` in `clients` threads for `seconds`; collect latencies."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(client: httpx.Client) -> None:
        nonlocal errors
        mine, bad = [], 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            ok = call(client)
            mine.append(time.perf_counter() - t0)
            bad += not ok
        with lock:
            latencies.extend(mine)
            errors += bad

    pool = [httpx.Client(base_url=BASE, headers=HEADERS, timeout=30) for _ in range(clients)]
    threads = [threading.Thread(target=worker, args=(c,)) for c in pool]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for c in pool:
        c.close()
    lat = sorted(latencies)
    return {
        "system": "orchid",
        "bench": "api",
        "phase": name,
        "clients": clients,
        "requests": len(lat),
        "errors": errors,
        "wall_s": round(wall, 2),
        "per_s": round(len(lat) / wall, 1),
        "p50_ms": round(1000 * statistics.median(lat), 2) if lat else None,
        "p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2) if lat else None,
    }


BASE = ""
HEADERS: dict[str, str] = {}


def main() -> None:
    global BASE, HEADERS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    a = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="orchid-bench-"))
    pg_admin = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    pg_name = f"orchid_bench_{uuid.uuid4().hex[:8]}"
    if a.db == "postgres":
        admin = sa.create_engine(pg_admin, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{pg_name}"'))
        url = pg_admin.rsplit("/", 1)[0] + "/" + pg_name
    else:
        url = f"sqlite:///{home / 'orchid.db'}"
    env = {**os.environ, "ORCHID_HOME": str(home), "ORCHID_DB_URL": url}
    port = free_port()
    BASE = f"http://127.0.0.1:{port}/api/v1"
    orchid("db", "upgrade", env=env)
    token = orchid("token", "create", "--user", "bench", env=env).splitlines()[-1]
    HEADERS = {"Authorization": f"Bearer {token}"}
    server = subprocess.Popen(
        [sys.executable, "-m", "orchid.cli.main", "server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{BASE}/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        ids: list[int] = []

        def do_submit(c: httpx.Client) -> bool:
            r = c.post("/workflows", json={"template": TEMPLATE})
            if r.status_code == 201:
                ids.append(r.json()["id"])
            return r.status_code == 201

        def do_status(c: httpx.Client) -> bool:
            wf = ids[len(ids) // 2] if ids else 1
            r1 = c.get(f"/workflows/{wf}")
            r2 = c.get("/workflows", params={"limit": 20})
            return r1.status_code == 200 and r2.status_code == 200

        rows = [
            phase("submit", a.clients, a.seconds, do_submit),
            phase("status", a.clients, a.seconds, do_status),
        ]
    finally:
        server.terminate()
        server.wait(30)
        if a.db == "postgres":
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    for r in rows:
        r.update(db=a.db, machine=machine)
        print(json.dumps(r))
    print(
        f"\n{'phase':<8} {'db':<9} {'clients':>7} {'requests':>9} {'per s':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
    )
    for r in rows:
        print(
            f"{r['phase']:<8} {r['db']:<9} {r['clients']:>7} {r['requests']:>9} "
            f"{r['per_s']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['errors']:>6}"
        )
    print("(status: each request is a GET of one workflow plus a GET of the list)")


if __name__ == "__main__":
    main()
