"""Orchid on Slurm against the peers that do the same, on one single-node Slurm, in one run.

    python bench/compare.py --slurm                      # (or python bench/slurmcompare.py)
    python bench/compare.py --slurm --jobs 10000 --chain 1000 --slurm-jobs 2000

Starts one single-node Slurm (Debian's slurm-wlm as root, ``tests/executors/
slurm_cluster.py``: 8 CPUs claimed, ``SchedulerParameters=--sched``), then runs, one
after the other, the layered DAG and the chain of ``bench/shapes.py`` through:

- ``orchid-local``: ``bench/dag.py --executor local`` (no Slurm: the latency reference);
- ``orchid-slurm``: one Slurm job per Orchid job (``bench/slurm.py``: the ``slurm``
  executor, one job array per batch of ready jobs of a work), with where its time goes;
- ``orchid-pilots``: Orchid workers as Slurm pilots (``bench/pilots.py``: ``orchid worker
  --slurm 1 --workers 2``, the jobs leased over HTTP from ``orchid server``);
- ``parsl-slurm``: Parsl's HighThroughputExecutor with its SlurmProvider (one block);
- ``dask-jobqueue``: dask-jobqueue's SLURMCluster (one job).

Every system runs the payload ``payload:noop`` (Python functions; ``orchid-slurm`` runs
``date`` as a job's command, which is what a Slurm job per job costs at least) on 2
workers, which in every Slurm mode but ``orchid-slurm`` live in one Slurm job started
before the clock (each has run a warm-up task). Orchid writes every state of every job to
its database (SQLite here) as it happens; Parsl and Dask keep theirs in memory. The peers
run from their own venvs (``bench/peers/setup.sh``).

Prints each row as one JSON line as it comes; then per shape a table with
orchid-pilots' ratio to each system (``×``: its jobs/s over theirs; their step p50 over
its own); then per-job Slurm's breakdown (``bench/slurm.py``'s fields); then issue 19's
targets, "met" or "NOT met":

- layered jobs/s: orchid-pilots >= 2× parsl-slurm's and >= 2× dask-jobqueue's;
- chain step p50: orchid-pilots <= 2× orchid-local's.

Sizes: ``--jobs`` (layered) and ``--chain`` for every system but ``orchid-slurm``, which
runs ``--slurm-jobs`` and ``--slurm-chain`` (a Slurm job per step of a chain costs about a
second); each row's ``jobs`` says what ran, and jobs/s and the latencies stay comparable.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import benchkit  # noqa: E402
import peers  # noqa: E402
import slurm  # noqa: E402
from peers import Row, ok, ratio, status, verdict  # noqa: E402

SYSTEMS = ("orchid-local", "orchid-slurm", "orchid-pilots", "parsl-slurm", "dask-jobqueue")
ME = "orchid-pilots"
THROUGHPUT = (("parsl-slurm", 2.0), ("dask-jobqueue", 2.0))
LATENCY = ("orchid-local", 2.0)
# bench/slurm.py's columns, less the settings every row of this run shares
SLURM_FIELDS = tuple(f for f in slurm.FIELDS if f not in ("poll_s", "sched", "status"))


def command(system: str, a: argparse.Namespace, conf: str) -> list[str]:
    """The command of one of Orchid's modes (run with this python), less the sizes."""
    if system == "orchid-local":
        return [sys.executable, str(BENCH / "dag.py"), "--executor", "local", "--workers", "2"]
    if system == "orchid-slurm":
        poll = ["--poll-interval", str(a.poll_interval)]
        return [sys.executable, str(BENCH / "slurm.py"), "--slurm-conf", conf, *poll]
    return [sys.executable, str(BENCH / "pilots.py"), "--slurm-conf", conf, "--workers", "2"]


def run_system(system: str, shape: str, jobs: int, a: argparse.Namespace, conf: str) -> Row:
    if system in peers.ON_SLURM:
        rows = peers.run_peer(system, shape, jobs, workers=2, seed=a.seed, timeout=a.timeout)
    else:
        cmd = command(system, a, conf)
        cmd += ["--shape", shape, "--jobs", str(jobs), "--seed", str(a.seed)]
        cmd += ["--timeout", str(a.timeout)]
        rows = peers.run_command(system, cmd, shape=shape, jobs=jobs, workers=2, timeout=a.timeout)
    row = rows[-1]
    row["system"] = system  # (bench/dag.py's rows say "orchid")
    return row


def summary(shape: str, rows: dict[str, Row]) -> str:
    me = rows.get(ME)
    out = []
    for system, r in rows.items():
        line = {
            "system": system,
            "jobs": r.get("jobs"),
            "jobs/s": r.get("jobs_per_s"),
            "step p50 ms": r.get("step_p50_ms"),
            "step p99 ms": r.get("step_p99_ms"),
        }
        if system != ME and ok(me) and ok(r):
            assert me is not None
            line["jobs/s ×"] = ratio(me["jobs_per_s"], r["jobs_per_s"])
            line["p50 ×"] = ratio(r.get("step_p50_ms"), me.get("step_p50_ms"))
        line["status"] = r.get("status")
        line["load"] = r.get("load")
        out.append(line)
    fields = ("system", "jobs", "jobs/s", "step p50 ms", "step p99 ms", "jobs/s ×", "p50 ×")
    return f"{shape}:\n" + benchkit.table(out, (*fields, "status", "load"))


def targets(by_shape: dict[str, dict[str, Row]]) -> list[str]:
    """One line per target of issue 19 item 3 whose systems ran."""
    lines = []
    layered = by_shape.get("layered", {})
    me = layered.get(ME)
    for peer, factor in THROUGHPUT:
        if peer not in layered:
            continue
        r = layered[peer]
        name = f"layered jobs/s >= {factor:g}x {peer}"
        if not ok(me) or not ok(r):
            lines.append(f"{name}: not measured ({status(me, ME)}; {status(r, peer)})")
            continue
        assert me is not None
        x = me["jobs_per_s"] / r["jobs_per_s"]
        lines.append(
            f"{name}: {verdict(x >= factor)} ({ME} {me['jobs_per_s']:,.1f} / {peer} "
            f"{r['jobs_per_s']:,.1f} jobs/s = {x:.2f}x)"
        )
    chain = by_shape.get("chain", {})
    ref, factor = LATENCY
    if ME in chain and ref in chain:
        me, r = chain[ME], chain[ref]
        name = f"chain step p50 <= {factor:g}x {ref}'s"
        if not ok(me) or not ok(r) or not me.get("step_p50_ms") or not r.get("step_p50_ms"):
            lines.append(f"{name}: not measured ({status(me, ME)}; {status(r, ref)})")
        else:
            x = me["step_p50_ms"] / r["step_p50_ms"]
            lines.append(
                f"{name}: {verdict(x <= factor)} ({ME} {me['step_p50_ms']} ms / {ref} "
                f"{r['step_p50_ms']} ms = {x:.2f}x)"
            )
    return lines


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    peers.selection_args(ap, SYSTEMS)
    ap.add_argument("--jobs", type=int, default=10_000, help="the layered DAG's size")
    ap.add_argument("--chain", type=int, default=1_000, help="the chain's size")
    ap.add_argument("--slurm-jobs", type=int, default=2_000, help="orchid-slurm's layered size")
    ap.add_argument("--slurm-chain", type=int, default=100, help="orchid-slurm's chain size")
    ap.add_argument("--poll-interval", type=float, default=0.5, help="orchid-slurm's squeue period")
    ap.add_argument("--sched", default="batch_sched_delay=0", help="Slurm's SchedulerParameters")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    return ap


def size(system: str, shape: str, a: argparse.Namespace) -> int:
    if system == "orchid-slurm":
        return int(a.slurm_jobs if shape == "layered" else a.slurm_chain)
    return int(a.jobs if shape == "layered" else a.chain)


def main(argv: list[str] | None = None) -> None:
    a = parser().parse_args(argv)
    unknown = [s for s in a.shapes if s not in ("layered", "chain")]
    if unknown:
        raise SystemExit(f"--shapes: {', '.join(unknown)}; choose from layered, chain")
    from tests.executors.slurm_cluster import SlurmCluster, available

    why = available()
    if why:
        raise SystemExit(why)
    by_shape: dict[str, dict[str, Row]] = {}
    sandbox = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
    try:
        extra = f"SchedulerParameters={a.sched}\n" if a.sched else ""
        with SlurmCluster(sandbox, extra) as cluster:  # sets SLURM_CONF for what runs
            conf = str(cluster.conf)
            for shape in a.shapes:
                by_shape[shape] = {}
                for system in a.systems:
                    row = run_system(system, shape, size(system, shape, a), a, conf)
                    row["sched"] = a.sched or "default"
                    benchkit.emit(row)
                    by_shape[shape][system] = row
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)
    print()
    for shape, rows in by_shape.items():
        print(summary(shape, rows))
        print()
    print(f"× = how many times {ME} is better: its jobs/s over the other's, the other's step")
    print("p50 over its own (step: a job's start minus its last parent's end).")
    per_job = [rows["orchid-slurm"] for rows in by_shape.values() if "orchid-slurm" in rows]
    if per_job:
        print()
        print("orchid-slurm, one Slurm job per job: where the time goes")
        print(benchkit.table(per_job, SLURM_FIELDS))
    print()
    print("targets (issue 19, item 3):")
    for line in targets(by_shape):
        print(f"  {line}")
    print(f"machine: {benchkit.machine()}; load {benchkit.load()}; Slurm {a.sched or 'default'}")


if __name__ == "__main__":
    main()
