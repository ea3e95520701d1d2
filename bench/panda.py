"""A layered DAG through a real PanDA: jobs/s and where a child's time goes after its parents end.

Starts the tests' real panda-server 1.0.4 + JEDI (tests/executors/panda_server.py, needs
``make .venv-panda/.installed``, PostgreSQL and RabbitMQ's STOMP port) and the stand-in
pilot (tests/executors/panda_pilot.py, ``--slots`` jobs at a time), then runs the
``layered`` graph of bench/shapes.py (10 layers, 2-4 parents each, two barriers) through
an in-process Orchid engine with the panda executor. Every job runs ``python3 -c pass``
through the real transPath wrapper.

For each job with parents, from Orchid's and PanDA's own records:

- ``release``: Orchid hands the child to the executor (``submitted_at``, which includes
  uploading its command and sending JEDI's ``file_processing`` message) minus its last
  parent's end as Orchid recorded it (``finished_at``);
- ``generate``: JEDI made the PanDA job (``creationtime``) minus that hand-over;
- ``pickup``: the pilot reported it running (``starttime``) minus its creation;
- ``run``: its end as the pilot reported it (``endtime``) minus its start;
- ``report``: Orchid recorded the end (``finished_at``) minus PanDA's ``endtime``
  (the adder's turn, then the executor's polling);
- ``step``: the child's ``finished_at`` minus its last parent's (the whole cycle).

PanDA's times are whole seconds: their medians are to a second. Prints one JSON line.

    python bench/panda.py --jobs 1000 --slots 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(Path(__file__).resolve().parent)]

import shapes  # noqa: E402
from tests.executors import panda_server  # noqa: E402
from tests.executors.panda_pilot import StandInPilot  # noqa: E402

from orchid.engine.runner import make_runner  # noqa: E402
from orchid.engine.submit import submit  # noqa: E402
from orchid.executors.panda import PandaExecutor, PandaOptions  # noqa: E402
from orchid.notify.config import StompBroker  # noqa: E402
from orchid.notify.stomp import StompSender  # noqa: E402
from orchid.settings import Settings  # noqa: E402
from orchid.store.db import Database  # noqa: E402


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    return {
        "p50": round(statistics.median(values), 2),
        "p90": round(values[int(0.9 * (len(values) - 1))], 2),
        "max": round(values[-1], 2),
    }


def run(jobs: int, slots: int, folder: Path, timeout: float) -> dict[str, Any]:
    server = panda_server.start(folder / "panda")
    try:
        with StandInPilot(
            server.api,
            panda_server.SITE,
            folder / "pilot",
            prod_source_label=panda_server.PROD_SOURCE_LABEL,
            slots=slots,
            heartbeat=5.0,
        ):
            return _run(server, jobs, folder, timeout)
    finally:
        server.stop()


def _run(
    server: panda_server.PandaServer, jobs: int, folder: Path, timeout: float
) -> dict[str, Any]:
    os.environ["ORCHID_BENCH_PANDA_TOKEN"] = "no-auth-here"
    opts = PandaOptions(
        url=server.url,
        vo=panda_server.VO,
        cloud=panda_server.CLOUD,
        site=panda_server.SITE,
        prod_source_label=panda_server.PROD_SOURCE_LABEL,
        token_env="ORCHID_BENCH_PANDA_TOKEN",
        python=sys.executable,
        poll_interval=1.0,
        release_destination=server.destination,
    )
    sender = StompSender(StompBroker(user="guest", password="guest"), server.destination)
    executor = PandaExecutor(folder / "logs", opts, namespace="bench", releases=sender)
    db = Database(f"sqlite:///{folder / 'orchid.db'}")
    db.upgrade()
    lines = []
    for group, name, parents in shapes.generate("layered", jobs):
        line: dict[str, Any] = {"work": group, "name": name}
        if parents:
            line["parents"] = [f"{g}/{n}" for g, n in parents]
        lines.append(json.dumps(line))
    (folder / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    command = [sys.executable, "-c", "pass"]
    template = {
        "name": "bench-panda",
        "works": [
            {"name": g, "jobs": "from_file", "command": command} for g in shapes.groups("layered")
        ],
        "jobs_file": "jobs.jsonl",
    }
    settings = Settings.load(
        env={}, db=db.url, home=folder / "home", bus="memory", poll_interval=0.05
    )
    runner = make_runner(settings, db, executor=executor)
    t0 = time.time()
    wf = submit(db, template, base_dir=folder, now=time.time())
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with db.begin() as conn:
                status = conn.exec_driver_sql(
                    "SELECT status FROM workflows WHERE id = ?", (wf,)
                ).scalar()
            if status in ("succeeded", "failed", "partial", "cancelled"):
                break
            if not runner.run_once():
                time.sleep(0.02)
        wall = time.time() - t0
    finally:
        executor.close()
        runner.close()
    return _measure(db, server, wf, status, wall, jobs)


def _measure(
    db: Database, server: panda_server.PandaServer, wf: int, status: str, wall: float, n: int
) -> dict[str, Any]:
    with db.begin() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id, work_id, name, attempt, submitted_at, finished_at, status FROM jobs "
            "WHERE workflow_id = ?",
            (wf,),
        ).all()
        edges = conn.exec_driver_sql("SELECT parent_id, child_id FROM job_edges").all()
    jobs = {r.id: r for r in rows}
    parents: dict[int, list[int]] = {}
    for parent, child in edges:
        parents.setdefault(child, []).append(parent)
    panda = {
        str(r.lfn).rsplit(":", 1)[-1]: r
        for r in server.sql(
            "SELECT f.lfn, j.creationtime, j.starttime, j.endtime FROM doma_panda.jobsarchived4 j "
            "JOIN doma_panda.filestable4 f ON f.pandaid = j.pandaid AND f.type = 'pseudo_input'"
        )
    }

    def epoch(value: Any) -> float | None:
        return value.replace(tzinfo=__import__("datetime").UTC).timestamp() if value else None

    stages: dict[str, list[float]] = {
        k: [] for k in ("release", "generate", "pickup", "run", "report", "step")
    }
    for job_id, ps in parents.items():
        child = jobs.get(job_id)
        if child is None or child.submitted_at is None or child.finished_at is None:
            continue
        last = max((jobs[p].finished_at or 0.0) for p in ps)
        stages["release"].append(child.submitted_at - last)
        stages["step"].append(child.finished_at - last)
        found = panda.get(f"j{job_id}.{child.attempt}")
        if found is None:
            continue
        made, start, end = epoch(found.creationtime), epoch(found.starttime), epoch(found.endtime)
        if made and start and end:
            stages["generate"].append(made - child.submitted_at)
            stages["pickup"].append(start - made)
            stages["run"].append(end - start)
            stages["report"].append(child.finished_at - end)
    return {
        "bench": "panda",
        "jobs": n,
        "status": status,
        "succeeded": sum(r.status == "succeeded" for r in rows),
        "wall_s": round(wall, 1),
        "jobs_per_s": round(n / wall, 2),
        **{k: stats(v) for k, v in stages.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=8, help="the stand-in pilot's")
    parser.add_argument("--timeout", type=float, default=3600.0)
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix=f"orchid-bench-panda-{uuid.uuid4().hex[:6]}-") as d:
        print(json.dumps(run(ns.jobs, ns.slots, Path(d), ns.timeout)), flush=True)


if __name__ == "__main__":
    main()
