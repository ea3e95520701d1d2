"""Orchid against its peers in one run: the same two graphs, their ratios, issue 5's targets.

    .venv/bin/python bench/compare.py            # 10,000-job layered DAG, 1,000-job chain
    .venv/bin/python bench/compare.py --quick    # 1,000 layered, 200 chain: a smoke run
    .venv/bin/python bench/compare.py --slurm    # on Slurm: bench/slurmcompare.py (issue 19)

Runs Orchid (``bench/dag.py --executor local``: one agent, 2 worker processes, SQLite,
with the python running this script, which must have Orchid installed) and every peer of
``bench/peers.py`` (each from its own venv, set up on first use) on (1) the layered DAG
and (2) the chain, one system after the other, so that every figure comes from the same
run on the same machine. Airflow runs reduced sizes (500 layered, 100 chain; 100 and 20
with ``--quick``): its row says so and jobs/s stays comparable.

Prints every row as one JSON line as it comes, then per shape a table of each system's
jobs/s and step latency p50/p99 with Orchid's ratio to each peer (``×``: how many times
Orchid is better: its jobs/s over the peer's, the peer's latency over Orchid's), then one
line per target of the issue, "met" or "NOT met" with its figures:

- layered jobs/s: Orchid >= 2× Dask's, >= 20× Prefect's, >= 50× Airflow's;
- chain step latency: p50 <= 3 ms, p99 <= 8 ms, both better than Dask's and Parsl's.

The machine has 2 cores: what else runs on it shows in each row's ``load``; figures taken
while it is busy are provisional.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit
import peers
from peers import Row, ok, ratio, status, verdict

BENCH = Path(__file__).resolve().parent
SYSTEMS = ("orchid", *peers.SYSTEMS)
FULL = {"layered": 10_000, "chain": 1_000}
QUICK = {"layered": 1_000, "chain": 200}
# Airflow's reduced sizes (its tasks are processes that each parse the DAG file again)
AIRFLOW_FULL = {"layered": 500, "chain": 100}
AIRFLOW_QUICK = {"layered": 100, "chain": 20}
THROUGHPUT = (("dask", 2.0), ("prefect", 20.0), ("airflow", 50.0))
STEP_P50_MS, STEP_P99_MS = 3.0, 8.0
STEP_RIVALS = ("dask", "parsl")


def run_system(
    system: str, shape: str, jobs: int, *, workers: int, seed: int, timeout: float
) -> list[dict[str, Any]]:
    """Orchid through ``bench/dag.py`` (with this python), a peer through its runner."""
    if system != "orchid":
        return peers.run_peer(system, shape, jobs, workers=workers, seed=seed, timeout=timeout)
    cmd = [sys.executable, str(BENCH / "dag.py"), "--executor", "local", "--shape", shape]
    cmd += ["--jobs", str(jobs), "--workers", str(workers), "--seed", str(seed)]
    cmd += ["--timeout", str(timeout)]
    return peers.run_command(system, cmd, shape=shape, jobs=jobs, workers=workers, timeout=timeout)


def summary(shape: str, rows: dict[str, Row]) -> str:
    """The table of one shape: each system's figures and Orchid's ratios to it."""
    me = rows.get("orchid")
    out = []
    for system, r in rows.items():
        line = {
            "system": system,
            "jobs": r.get("jobs"),
            "jobs/s": r.get("jobs_per_s"),
            "step p50 ms": r.get("step_p50_ms"),
            "step p99 ms": r.get("step_p99_ms"),
        }
        if system != "orchid" and ok(me) and ok(r):
            line["jobs/s ×"] = ratio(me["jobs_per_s"], r["jobs_per_s"])
            line["p50 ×"] = ratio(r.get("step_p50_ms"), me.get("step_p50_ms"))
            line["p99 ×"] = ratio(r.get("step_p99_ms"), me.get("step_p99_ms"))
        line["status"] = r.get("status")
        line["load"] = r.get("load")
        out.append(line)
    fields = ("system", "jobs", "jobs/s", "step p50 ms", "step p99 ms", "jobs/s ×", "p50 ×")
    return f"{shape}:\n" + benchkit.table(out, (*fields, "p99 ×", "status", "load"))


def targets(by_shape: dict[str, dict[str, Row]]) -> list[str]:
    """One line per target of issue 5 whose systems this run included."""
    lines = []
    layered = by_shape.get("layered", {})
    me = layered.get("orchid")
    for peer, factor in THROUGHPUT:
        if peer not in layered:
            continue
        r = layered[peer]
        name = f"layered jobs/s >= {factor:g}x {peer}"
        if not ok(me) or not ok(r):
            lines.append(f"{name}: not measured ({status(me, 'orchid')}; {status(r, peer)})")
            continue
        x = me["jobs_per_s"] / r["jobs_per_s"]
        lines.append(
            f"{name}: {verdict(x >= factor)} (orchid {me['jobs_per_s']:,.1f} / {peer} "
            f"{r['jobs_per_s']:,.1f} jobs/s = {x:.2f}x; {peer} ran {r['jobs']:,} jobs)"
        )
    if "chain" not in by_shape:
        return lines
    chain = by_shape["chain"]
    me = chain.get("orchid")
    if not ok(me) or me.get("step_p50_ms") is None:
        lines.append(f"chain step latency: not measured ({status(me, 'orchid')})")
        return lines
    p50, p99 = me["step_p50_ms"], me["step_p99_ms"]
    lines.append(f"chain step p50 <= {STEP_P50_MS:g} ms: {verdict(p50 <= STEP_P50_MS)} ({p50} ms)")
    lines.append(f"chain step p99 <= {STEP_P99_MS:g} ms: {verdict(p99 <= STEP_P99_MS)} ({p99} ms)")
    for peer in STEP_RIVALS:
        if peer not in chain:
            continue
        r = chain[peer]
        name = f"chain step p50 and p99 better than {peer}"
        if not ok(r) or r.get("step_p50_ms") is None:
            lines.append(f"{name}: not measured ({status(r, peer)})")
            continue
        good = p50 < r["step_p50_ms"] and p99 < r["step_p99_ms"]
        lines.append(
            f"{name}: {verdict(good)} (orchid {p50}/{p99} ms, "
            f"{peer} {r['step_p50_ms']}/{r['step_p99_ms']} ms)"
        )
    return lines


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument(
        "--slurm",
        action="store_true",
        help="compare on a single-node Slurm instead (bench/slurmcompare.py and its options)",
    )
    peers.selection_args(ap, SYSTEMS)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per run")
    ap.add_argument("--prefect-jobs", type=int, help="Prefect's size (default: the shape's)")
    return ap


def main() -> None:
    if "--slurm" in sys.argv[1:]:  # the Slurm comparison has systems and sizes of its own
        import slurmcompare

        slurmcompare.main([arg for arg in sys.argv[1:] if arg != "--slurm"])
        return
    a = parser().parse_args()
    unknown = [s for s in a.shapes if s not in FULL]
    if unknown:
        raise SystemExit(f"--shapes: {', '.join(unknown)}; choose from {', '.join(FULL)}")
    sizes = QUICK if a.quick else FULL
    airflow = AIRFLOW_QUICK if a.quick else AIRFLOW_FULL
    by_shape: dict[str, dict[str, Row]] = {}
    for shape in a.shapes:
        by_shape[shape] = {}
        for system in a.systems:
            own = {"airflow": airflow[shape], "prefect": a.prefect_jobs}
            jobs = (
                sizes[shape]
                if system == "orchid"
                else peers.jobs_for(system, shape, sizes[shape], own)
            )
            rows = run_system(
                system, shape, jobs, workers=a.workers, seed=a.seed, timeout=a.timeout
            )
            for row in rows:
                benchkit.emit(row)
            by_shape[shape][system] = rows[-1]
    print()
    for shape, shape_rows in by_shape.items():
        print(summary(shape, shape_rows))
        print()
    print("× = how many times Orchid is better: its jobs/s over the peer's, the peer's step")
    print("latency over Orchid's (step: a job's start minus its last parent's end).")
    print()
    print("targets (issue 5):")
    for line in targets(by_shape):
        print(f"  {line}")
    print(f"machine: {benchkit.machine()}; load {benchkit.load()}")


if __name__ == "__main__":
    main()
