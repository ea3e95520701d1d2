"""Run a generated job DAG through Orchid on Slurm, one Slurm job per Orchid job, and say
where the time goes.

By default a single-node Slurm sandbox is started for the run (Debian's slurm-wlm, as root:
``tests/executors/slurm_cluster.py``; 8 CPUs claimed, so 8 jobs at once); ``--slurm-conf``
uses a running cluster instead. One ``orchid agents`` process runs the graph (``bench/
shapes.py``) with a ``type = "slurm"`` executor; each job runs ``date +%s.%N``, so its
result is the moment it started on the node. The Slurm commands are wrapped to log each
call's duration.

- ``sbatch_calls``, ``sbatch_p50_ms``, ``sbatch_s`` (their total), ``tasks_per_sbatch``:
  the submissions (one job array per batch of ready jobs of one work);
- ``squeue_calls``, ``squeue_p50_ms``: the status reads (one per ``poll_interval``);
- ``wait_p50_ms``/``wait_p99_ms``: from the agent's hand-over of a job (``submitted_at``) to
  its start on the node: the sbatch call, Slurm's scheduling and the launch;
- ``detect_p50_ms``/``detect_p99_ms``: from the job's start (it runs for milliseconds) to
  Orchid recording its end: Slurm's end of the job and the next squeue;
- ``release_p50_ms``: a child's ``ready_at`` minus its last parent's ``finished_at``
  (Orchid's own dependency work);
- ``step_p50_ms``/``step_p99_ms``: a child's start on the node minus its last parent's.

Prints one JSON object per line, then a table.

    python bench/slurm.py --shape layered --jobs 1000
    python bench/slurm.py --shape chain --jobs 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

import sqlalchemy as sa

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import benchkit  # noqa: E402
import shapes  # noqa: E402
from dag import job_lines, scalar, stop_agents  # noqa: E402

from orchid.engine.submit import submit  # noqa: E402
from orchid.store.db import Database  # noqa: E402

FIELDS = (
    "shape",
    "jobs",
    "poll_s",
    "sched",
    "wall_s",
    "jobs_per_s",
    "sbatch_calls",
    "tasks_per_sbatch",
    "sbatch_p50_ms",
    "sbatch_s",
    "squeue_calls",
    "squeue_p50_ms",
    "wait_p50_ms",
    "wait_p99_ms",
    "detect_p50_ms",
    "detect_p99_ms",
    "release_p50_ms",
    "step_p50_ms",
    "step_p99_ms",
    "status",
)


def timed_commands(folder: Path) -> Path:
    """A bin_dir whose sbatch and squeue log ``name start end args`` to ``calls.log``."""
    folder.mkdir(parents=True)
    for name in ("scontrol", "scancel", "sacct"):
        real = shutil.which(name)
        if real:
            (folder / name).symlink_to(real)
    for name in ("sbatch", "squeue"):
        real = shutil.which(name)
        if real is None:
            raise SystemExit(f"{name} not found: install the Slurm client commands")
        script = folder / name
        script.write_text(
            f"""#!/bin/sh
t0=$(date +%s.%N)
{real} "$@"
rc=$?
echo "{name} $t0 $(date +%s.%N) $*" >> {folder}/calls.log
exit $rc
"""
        )
        script.chmod(0o755)
    return folder


def template(shape: str) -> dict[str, Any]:
    work = {"jobs": "from_file", "command": ["/bin/sh", "-c", "date +%s.%N"]}
    return {
        "name": f"bench-slurm-{shape}",
        "defaults": {"executor": "hpc"},
        "works": [{"name": g, **work} for g in shapes.groups(shape)],
        "jobs_file": "jobs.jsonl",
    }


def calls(log: Path) -> dict[str, list[tuple[float, int]]]:
    """Per command: (seconds, array tasks) of each call."""
    out: dict[str, list[tuple[float, int]]] = {"sbatch": [], "squeue": []}
    for line in log.read_text().splitlines() if log.exists() else []:
        name, t0, t1, *args = line.split()
        tasks = 1
        for arg in args:
            if arg.startswith("--array=0-"):
                tasks = int(arg.split("-")[-1]) + 1
        out[name].append((float(t1) - float(t0), tasks))
    return out


def spans(db: Database, wf: int) -> dict[str, array[float]]:
    """Sorted latencies in seconds: wait, detect, release, step."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, submitted_at, finished_at, ready_at, result FROM jobs "
                "WHERE workflow_id = :wf"
            ),
            {"wf": wf},
        ).all()
        edges = conn.execute(
            sa.text(
                "SELECT e.child_id, e.parent_id FROM job_edges e JOIN jobs c "
                "ON c.id = e.child_id WHERE c.workflow_id = :wf"
            ),
            {"wf": wf},
        ).all()
    start = {
        r.id: float(json.loads(r.result) if isinstance(r.result, str) else r.result)
        for r in rows
        if r.result is not None
    }
    finished = {r.id: r.finished_at for r in rows}
    parents: dict[int, list[int]] = {}
    for child, parent in edges:
        parents.setdefault(child, []).append(parent)
    out = {k: array("d") for k in ("wait", "detect", "release", "step")}
    for r in rows:
        if r.id not in start:
            continue
        if r.submitted_at is not None:
            out["wait"].append(start[r.id] - r.submitted_at)
        if r.finished_at is not None:
            out["detect"].append(r.finished_at - start[r.id])
        ps = parents.get(r.id)
        if ps:
            if r.ready_at is not None:
                out["release"].append(r.ready_at - max(finished[p] for p in ps))
            if all(p in start for p in ps):
                out["step"].append(start[r.id] - max(start[p] for p in ps))
    return {k: array("d", sorted(v)) for k, v in out.items()}


def run(a: argparse.Namespace, home: Path) -> dict[str, Any]:
    bin_dir = timed_commands(home / "bin")
    (home / "settings.toml").write_text(
        f"""[executors.hpc]
type = "slurm"
poll_interval = {a.poll_interval}
python = "{sys.executable}"
bin_dir = "{bin_dir}"
"""
    )
    url = f"sqlite:///{home / 'orchid.db'}"
    db = Database(url)
    db.upgrade()
    env = {
        **os.environ,
        "ORCHID_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(BENCH.parent / "src"), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    log = (home / "agent.log").open("wb")
    agent = subprocess.Popen(
        [sys.executable, "-m", "orchid.cli.main", "agents", "--db", url],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        if not benchkit.wait_until(
            lambda: (scalar(db, "SELECT count(*) FROM agents") or 0) > 0, 60
        ):
            raise SystemExit(f"the agent did not start; see {home}/agent.log")
        jobs_file = home / "jobs.jsonl"
        with jobs_file.open("w") as fh:
            fh.writelines(line + "\n" for line in job_lines(a.shape, a.jobs, a.seed))
        t0 = time.time()
        with jobs_file.open() as lines:
            wf = submit(db, template(a.shape), base_dir=home, now=t0, job_lines=lines)

        def ended() -> bool:
            if agent.poll() is not None:
                raise SystemExit(f"the agent died; see {home}/agent.log")
            return scalar(db, "SELECT finished_at FROM workflows WHERE id = :i", i=wf) is not None

        finished = benchkit.wait_until(ended, a.timeout, every=0.1)
    finally:
        stop_agents([agent])
    status = scalar(db, "SELECT status FROM workflows WHERE id = :i", i=wf)
    end = scalar(db, "SELECT finished_at FROM workflows WHERE id = :i", i=wf) or time.time()
    lat = spans(db, wf)
    db.dispose()
    made = calls(bin_dir / "calls.log")
    sb = sorted(s for s, _ in made["sbatch"])
    sq = sorted(s for s, _ in made["squeue"])
    p50, p99, ms = benchkit.percentile, benchkit.percentile, benchkit.ms
    return {
        "system": "orchid-slurm",
        "shape": a.shape,
        "jobs": a.jobs,
        "poll_s": a.poll_interval,
        "sched": a.sched or "default",
        "wall_s": round(end - t0, 2),
        "jobs_per_s": round(a.jobs / (end - t0), 2),
        "sbatch_calls": len(sb),
        "tasks_per_sbatch": round(sum(t for _, t in made["sbatch"]) / max(1, len(sb)), 1),
        "sbatch_p50_ms": ms(p50(sb, 0.5)),
        "sbatch_s": round(sum(sb), 2),
        "squeue_calls": len(sq),
        "squeue_p50_ms": ms(p50(sq, 0.5)),
        "wait_p50_ms": ms(p50(lat["wait"], 0.5)),
        "wait_p99_ms": ms(p99(lat["wait"], 0.99)),
        "detect_p50_ms": ms(p50(lat["detect"], 0.5)),
        "detect_p99_ms": ms(p99(lat["detect"], 0.99)),
        "release_p50_ms": ms(p50(lat["release"], 0.5)),
        "step_p50_ms": ms(p50(lat["step"], 0.5)),
        "step_p99_ms": ms(p99(lat["step"], 0.99)),
        "status": status if finished else "timeout",
        "load": benchkit.load(),
    }


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--shape", choices=shapes.SHAPES, default="layered")
    ap.add_argument("--poll-interval", type=float, default=0.5, help="the executor's squeue period")
    ap.add_argument("--slurm-conf", help="use this running cluster, not a sandbox of its own")
    ap.add_argument(
        "--sched",
        default="",
        help="the sandbox's SchedulerParameters (default: Slurm's), e.g. batch_sched_delay=0",
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--tmp", default=str(BENCH / ".work"))
    return ap


def main() -> None:
    a = parser().parse_args()
    Path(a.tmp).mkdir(parents=True, exist_ok=True)
    rows = []
    for _ in range(a.repeat):
        home = Path(tempfile.mkdtemp(prefix="orchid-slurm-", dir=a.tmp))
        try:
            if a.slurm_conf:
                os.environ["SLURM_CONF"] = a.slurm_conf
                rows.append(run(a, home))
            else:
                from tests.executors.slurm_cluster import SlurmCluster, available

                why = available()
                if why:
                    raise SystemExit(why)
                sandbox = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
                try:
                    extra = f"SchedulerParameters={a.sched}\n" if a.sched else ""
                    with SlurmCluster(sandbox, extra):
                        rows.append(run(a, home))
                finally:
                    shutil.rmtree(sandbox, ignore_errors=True)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        benchkit.emit(rows[-1])
    print()
    print(benchkit.table(rows, FIELDS))
    print(f"machine: {benchkit.machine()}; load {benchkit.load()}")


if __name__ == "__main__":
    main()
