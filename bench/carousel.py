"""The data carousel at campaign scale: a simulated tape library feeds a real engine.

Replays one ATLAS reprocessing campaign's shape (63 datasets, 426,331 files, 932 TB,
file sizes drawn around per-dataset averages) through ``tapesim`` on an accelerated
clock, while the engine (clerk, transformer, carrier, trigger, transporter on SQLite
or PostgreSQL) follows every file: once with ``release: per-file`` and once with
``release: per-collection``. Each job "processes" its file with the null executor
(instant) or the sleep executor (``--process-s`` simulated seconds per job).

Prints one JSON object per mode (``--json``: only those), a table, and writes a plot of
the disk buffer and of the files processed over time for both modes.

    python bench/carousel.py                                  # the whole campaign
    python bench/carousel.py --files 20000 --datasets 10      # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from orchid.core.states import TERMINAL_WORKFLOW
from orchid.datamgr.tapesim import AcceleratedClock, DatasetSpec, Library, TapeConfig, TapeSim
from orchid.engine.runner import make_runner
from orchid.engine.submit import submit
from orchid.executors.base import Executor
from orchid.executors.null import NullExecutor
from orchid.executors.sleep import SleepExecutor
from orchid.settings import Settings
from orchid.store import workflows
from orchid.store.db import Database
from orchid.store.tables import collections, files, jobs

CAMPAIGN_FILES = 426_331
CAMPAIGN_DATASETS = 63
CAMPAIGN_BYTES = 932_290_670_456_064
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def campaign(n_files: int, n_datasets: int, total_bytes: int, seed: int) -> list[DatasetSpec]:
    """Datasets of the campaign's shape: file counts and mean sizes drawn around the averages."""
    rng = random.Random(seed)
    weights = [rng.lognormvariate(0, 0.6) for _ in range(n_datasets)]
    counts = [max(1, int(n_files * w / sum(weights))) for w in weights]
    counts[-1] += n_files - sum(counts)
    means = [rng.lognormvariate(0, 0.3) for _ in range(n_datasets)]
    scale = total_bytes / sum(c * m for c, m in zip(counts, means, strict=True))
    return [
        DatasetSpec(
            f"data18_13TeV:data18_13TeV.{348000 + k}.physics_Main.RAW", c, max(1, round(m * scale))
        )
        for k, (c, m) in enumerate(zip(counts, means, strict=True))
    ]


def template(names: list[str], release: str) -> dict[str, Any]:
    return {
        "name": f"carousel-{release}",
        "works": [
            {
                "name": "reprocess",
                "noop": True,
                "input": {
                    "manager": "tape",
                    "collections": names,
                    "release": release,
                    "delete_after": "processed",
                    "retries": 3,
                },
            }
        ],
    }


def open_db(kind: str, folder: Path) -> tuple[Database, Any]:
    if kind == "sqlite":
        db = Database(f"sqlite:///{folder / 'bench.db'}")
        db.upgrade()
        return db, None
    name = f"orchid_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db = Database(PG_ADMIN.rsplit("/", 1)[0] + "/" + name)
    db.upgrade()

    def drop() -> None:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return db, drop


def tape_bound(lib: Library, cfg: TapeConfig) -> float:
    """No schedule is faster: every byte read at full speed by every drive, each tape
    mounted once; and no faster than the fullest tape read by one drive."""
    per_tape = [0] * lib.tapes
    for f in lib.files:
        per_tape[f.tape] += f.size
    mounts = sum(1 for b in per_tape if b) * (cfg.mount_s + cfg.unmount_s)
    spread = lib.total_bytes / (cfg.drives * cfg.bandwidth) + mounts / cfg.drives
    return max(spread, max(per_tape) / cfg.bandwidth + cfg.mount_s)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_mode(args: argparse.Namespace, specs: list[DatasetSpec], release: str) -> dict[str, Any]:
    lib = Library.generate(
        specs, seed=args.seed, tape_capacity=int(args.tape_tb * 1e12), spread=args.spread
    )
    cfg = TapeConfig(
        drives=args.drives,
        bandwidth=args.bandwidth_mb * 1e6,
        mount_s=args.mount_s,
        unmount_s=args.unmount_s,
        locate_s=args.locate_s,
        buffer_bytes=int(args.buffer_tb * 1e12) if args.buffer_tb else None,
        failure_rate=args.failure_rate,
        straggler_rate=args.straggler_rate,
        straggler_s=(args.straggler_h[0] * 3600, args.straggler_h[1] * 3600),
        seed=args.seed,
        sample_s=600.0,
    )
    with tempfile.TemporaryDirectory(prefix="orchid-carousel-") as tmp:
        folder = Path(tmp)
        db, drop = open_db(args.db, folder)
        settings = Settings.load(
            env={}, home=folder, db=db.url, executor="null", poll_interval=0.01, batch=args.batch
        )
        wall0 = time.time()
        clock = AcceleratedClock(args.speed)
        sim = TapeSim(lib, cfg, clock)
        executor: Executor | None = None
        if args.executor == "sleep":
            executor = SleepExecutor(args.process_s / args.speed, slots=args.slots)
        runner = make_runner(settings, db, executor=executor, data_managers={"tape": sim})
        exe = runner.executor
        if isinstance(exe, NullExecutor | SleepExecutor):
            exe._wake = lambda: runner.bus.notify("ended")
        wf = submit(db, template(list(lib.datasets), release), base_dir=None, now=time.time())
        deadline = time.monotonic() + args.timeout

        def ended() -> bool:
            if time.monotonic() > deadline:
                return True
            with db.engine.connect() as conn:
                return workflows.get(conn, wf).status in TERMINAL_WORKFLOW

        runner.run(until=ended, check_every=1.0)
        wall = time.time() - wall0
        exe.close()
        runner.close()
        with db.engine.connect() as conn:
            status = workflows.get(conn, wf).status
            rows = conn.execute(
                sa.select(
                    collections.c.scope,
                    collections.c.name,
                    files.c.name.label("file"),
                    jobs.c.ready_at,
                    jobs.c.finished_at,
                )
                .join(files, files.c.collection_id == collections.c.id)
                .join(jobs, jobs.c.id == files.c.job_id)
                .where(jobs.c.status == "succeeded")
            ).all()
        db.dispose()
        if drop:
            drop()
    landed = sim.sim.landed_at
    by_name = lib.by_name
    latency, lag, done_at = [], [], []
    for r in rows:
        i = by_name[(f"{r.scope}:{r.name}", r.file)]
        finished = clock.to_sim(r.finished_at)
        done_at.append(finished)
        latency.append(finished - landed[i])
        lag.append(clock.to_sim(r.ready_at) - landed[i])
    done_at.sort()
    makespan = done_at[-1] if done_at else float("nan")
    tapes = len(lib.tapes_of(range(len(lib.files))))
    bound = tape_bound(lib, cfg)
    st = sim.sim.stats
    return {
        "mode": release,
        "status": str(status),
        "files": len(lib.files),
        "processed": len(rows),
        "bytes": lib.total_bytes,
        "datasets": len(lib.datasets),
        "tapes": tapes,
        "drives": args.drives,
        "makespan_s": round(makespan, 1),
        "makespan_99_s": round(done_at[int(0.99 * (len(done_at) - 1))], 1) if done_at else None,
        "tape_bound_s": round(bound, 1),
        "peak_buffer_bytes": st.peak_buffer,
        "mean_buffer_bytes": round(st.buffer_area / makespan) if done_at else None,
        "latency_p50_s": round(pct(latency, 0.5), 1),
        "latency_p99_s": round(pct(latency, 0.99), 1),
        "engine_lag_p50_s": round(pct(lag, 0.5), 2),
        "engine_lag_p99_s": round(pct(lag, 0.99), 2),
        "engine_files_per_s": round(len(rows) / wall, 1),
        "wall_s": round(wall, 1),
        "speed": args.speed,
        "executor": args.executor,
        "db": args.db,
        "mounts": st.mounts,
        "read_failures": st.failures,
        "stragglers": st.stragglers,
        "load": os.getloadavg()[0],
        "_samples": st.samples,
        "_done": done_at,
    }


def table(results: list[dict[str, Any]]) -> str:
    tb = 1e12
    lines = [
        "| mode | files | makespan | tape bound | peak buffer | mean buffer | latency p50 / p99 | engine lag p99 | engine files/s | wall |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['mode']} | {r['processed']:,}/{r['files']:,} | {r['makespan_s'] / 3600:.1f} h "
            f"({r['makespan_s'] / r['tape_bound_s']:.3f}×) | {r['tape_bound_s'] / 3600:.1f} h "
            f"| {r['peak_buffer_bytes'] / tb:.1f} TB | {(r['mean_buffer_bytes'] or 0) / tb:.1f} TB "
            f"| {r['latency_p50_s']:.0f} s / {r['latency_p99_s']:.0f} s | {r['engine_lag_p99_s']:.0f} s "
            f"| {r['engine_files_per_s']:,.0f} | {r['wall_s']:.0f} s |"
        )
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, dpi=80)
    for r in results:
        if r["_samples"]:
            t, used = zip(*r["_samples"], strict=True)
            top.plot([x / 86400 for x in t], [u / 1e12 for u in used], label=r["mode"])
        done = r["_done"]
        step = max(1, len(done) // 2000)
        bottom.plot(
            [x / 86400 for x in done[::step]], list(range(0, len(done), step)), label=r["mode"]
        )
    top.set_ylabel("disk buffer (TB)")
    top.set_yscale("symlog", linthresh=1)
    top.legend()
    bottom.set_ylabel("files processed")
    bottom.set_xlabel("campaign time (days)")
    bottom.legend()
    title = f"{results[0]['files']:,} files, {results[0]['bytes'] / 1e12:,.0f} TB, {results[0]['drives']} drives"
    fig.suptitle(f"Data carousel: {title}")
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--files", type=int, default=CAMPAIGN_FILES)
    p.add_argument("--datasets", type=int, default=CAMPAIGN_DATASETS)
    p.add_argument(
        "--bytes",
        type=int,
        default=None,
        help="total bytes (default: the campaign's per-file average)",
    )
    p.add_argument("--drives", type=int, default=8)
    p.add_argument("--bandwidth-mb", type=float, default=360.0, help="MB/s per drive")
    p.add_argument("--mount-s", type=float, default=90.0)
    p.add_argument("--unmount-s", type=float, default=30.0)
    p.add_argument("--locate-s", type=float, default=30.0)
    p.add_argument("--tape-tb", type=float, default=12.0, help="tape capacity")
    p.add_argument("--spread", type=int, default=4, help="tapes a dataset is written over at once")
    p.add_argument("--buffer-tb", type=float, default=None, help="disk buffer (default: unlimited)")
    p.add_argument("--failure-rate", type=float, default=1e-4)
    p.add_argument("--straggler-rate", type=float, default=2e-5)
    p.add_argument("--straggler-h", type=float, nargs=2, default=(1.0, 3.0))
    p.add_argument("--speed", type=float, default=2000.0, help="simulated seconds per wall second")
    p.add_argument("--executor", choices=["null", "sleep"], default="null")
    p.add_argument(
        "--process-s", type=float, default=600.0, help="simulated seconds per job (sleep)"
    )
    p.add_argument("--slots", type=int, default=5000, help="jobs at once (sleep)")
    p.add_argument("--modes", default="per-file,per-collection")
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--batch", type=int, default=2000, help="rows an agent claims at once")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=3600.0, help="wall seconds per mode")
    p.add_argument("--plot", type=Path, default=Path(__file__).with_name("carousel.png"))
    p.add_argument("--json", action="store_true", help="only the JSON lines")
    args = p.parse_args(argv)
    total = args.bytes or round(args.files * CAMPAIGN_BYTES / CAMPAIGN_FILES)
    specs = campaign(args.files, args.datasets, total, args.seed)
    results = []
    for mode in args.modes.split(","):
        r = run_mode(args, specs, mode)
        results.append(r)
        print(json.dumps({k: v for k, v in r.items() if not k.startswith("_")}), flush=True)
    if not args.json:
        print()
        print(table(results))
        print(f"\nuptime: {os.popen('uptime').read().strip()}")
        if len(results) == 2 and results[1]["peak_buffer_bytes"]:
            ratio = results[0]["peak_buffer_bytes"] / results[1]["peak_buffer_bytes"]
            print(f"peak buffer per-file / per-collection: {ratio:.4f}")
    if args.plot:
        plot(results, args.plot)
        if not args.json:
            print(f"plot: {args.plot}")
    return 0 if all(r["status"] == "succeeded" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
