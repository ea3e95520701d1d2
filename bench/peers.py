"""Run the same DAG on Orchid's peers, each in its own virtualenv, and print their rows.

    python bench/peers.py --systems dask,parsl,prefect,airflow --shape layered --jobs 10000

For every system it runs ``bench/peers/setup.sh SYSTEM`` (which installs the pinned
``bench/peers/requirements-SYSTEM.txt`` into ``bench/peers/.venvs/SYSTEM`` the first time,
and again when the pins change), then ``bench/peers/run_SYSTEM.py`` with that venv's
python as a subprocess with a timeout. Each runner starts its system on 127.0.0.1, runs
the graph of ``bench/shapes.py`` with 2 workers and prints one JSON line with the fields
of ``bench/dag.py``; this script relays each line as it comes, then prints the table and
the machine and its load.

Airflow runs a reduced graph by default (``--airflow-jobs``: 500 layered, 100 chain), as
may Prefect (``--prefect-jobs``); the row's ``jobs`` says what ran, and jobs/s and the
step latencies stay comparable. A system whose runner fails or times out is a row with
the status ``failed: <its last stderr line>``, and the others still run. The runners'
stderr goes to ``bench/.work/peers/`` (kept for reading after a failure).

Standard library only (it runs from any python; the peers never import Orchid).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TypeGuard

BENCH = Path(__file__).resolve().parent
PEERS = BENCH / "peers"
sys.path.insert(0, str(BENCH))

import benchkit  # noqa: E402
import shapes  # noqa: E402

SYSTEMS = ("dask", "parsl", "prefect", "airflow")
# the peers on Slurm (bench/slurmcompare.py starts the cluster; SLURM_CONF names it): the
# venv each uses and its runner's arguments
ON_SLURM = {
    "parsl-slurm": ("parsl", "parsl", ["--provider", "slurm"]),
    "dask-jobqueue": ("dask-jobqueue", "dask", ["--cluster", "slurm"]),
}
# what the slow systems run by default, per shape (a few minutes each on 2 cores)
REDUCED = {"airflow": {"layered": 500, "chain": 100, "bag": 500, "expand": 500}}
LOGS = BENCH / ".work" / "peers"
TABLE = tuple(
    f for f in benchkit.FIELDS if f not in ("db", "agents", "release_p50_ms", "release_p99_ms")
)
GRACE_S = 90.0  # past a runner's own --timeout, before it is stopped


# --- verdicts on result rows (compare.py, slurmcompare.py) -----------------------------------

Row = dict[str, Any]


def ok(row: Row | None) -> TypeGuard[Row]:
    """A row whose every job ran (a failed or partial run sets no target)."""
    return row is not None and row.get("status") == "succeeded" and bool(row.get("jobs_per_s"))


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def verdict(good: bool) -> str:
    return "met" if good else "NOT met"


def status(row: Row | None, system: str) -> str:
    return f"{system} {row.get('status') if row else 'not run'}"


def runner(system: str) -> Path:
    return PEERS / f"run_{ON_SLURM[system][1] if system in ON_SLURM else system}.py"


def venv(system: str) -> str:
    """The venv (and requirements file) of a system."""
    return ON_SLURM[system][0] if system in ON_SLURM else system


def python(system: str) -> Path:
    return PEERS / ".venvs" / venv(system) / "bin" / "python"


def setup(system: str) -> str | None:
    """Install (or check) the system's venv; None when ready, else why not."""
    system = venv(system)
    if not (PEERS / f"requirements-{system}.txt").exists():
        return f"no bench/peers/requirements-{system}.txt"
    proc = subprocess.run(
        ["bash", str(PEERS / "setup.sh"), system],
        stdout=sys.stderr,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        return last_line(proc.stderr) or f"setup.sh {system} exited with {proc.returncode}"
    return None


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def failed(system: str, shape: str, jobs: int, workers: int, why: str) -> dict[str, Any]:
    return {
        "system": system,
        "shape": shape,
        "jobs": jobs,
        "executor": "local",
        "workers": workers,
        "status": f"failed: {why}",
        "load": benchkit.load(),
    }


def run_command(
    system: str, cmd: list[str], *, shape: str, jobs: int, workers: int, timeout: float
) -> list[dict[str, Any]]:
    """Run one benchmark command in a session of its own; return the JSON rows it printed
    (or one failed row). Its stderr goes to a log file under bench/.work/peers/.

    On a timeout the command gets SIGTERM (the runners stop what they started on it),
    then, GRACE_S later, its whole process group gets SIGKILL."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{system}-{shape}-{jobs}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    print(f"{system}: {' '.join(cmd)}  (stderr: {log})", file=sys.stderr, flush=True)
    with log.open("w+") as err:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True
        )
        try:
            out, _ = proc.communicate(timeout=timeout + GRACE_S)
            why = f"exited with {proc.returncode}"
        except subprocess.TimeoutExpired:
            out, why = stop(proc), f"no result after {timeout + GRACE_S:.0f} s"
        except BaseException:
            stop(proc)
            raise
        err.seek(0)
        tail = last_line(err.read())
    rows = []
    for line in out.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                rows.append(json.loads(line))
    if rows:
        return rows
    return [failed(system, shape, jobs, workers, tail or why)]


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, then SIGKILL to the process group it leads (it was started in a session of
    its own, so the group holds only what it started and did not move elsewhere)."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
    return out or ""


def jobs_for(system: str, shape: str, jobs: int, sizes: dict[str, int | None]) -> int:
    """The size a system runs: its option when given, else its reduced default, never more
    than asked for, never less than the shape allows."""
    chosen = sizes.get(system)
    if chosen is None:
        chosen = REDUCED.get(system, {}).get(shape, jobs)
    return max(shapes.minimum_jobs(shape), min(jobs, chosen))


def run_peer(
    system: str,
    shape: str,
    jobs: int,
    *,
    workers: int = 2,
    seed: int = 7,
    timeout: float = 900,
    extra: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Set up and run one peer's runner; its rows (one, or a failed one)."""
    if system not in SYSTEMS and system not in ON_SLURM:
        known = ", ".join((*SYSTEMS, *ON_SLURM))
        return [failed(system, shape, jobs, workers, f"unknown system; use {known}")]
    if not runner(system).exists():
        return [failed(system, shape, jobs, workers, f"no bench/peers/run_{system}.py")]
    why = setup(system)
    if why:
        return [failed(system, shape, jobs, workers, f"setup: {why}")]
    cmd = [str(python(system)), str(runner(system)), "--shape", shape, "--jobs", str(jobs)]
    cmd += ["--workers", str(workers), "--seed", str(seed), "--timeout", str(timeout)]
    cmd += ON_SLURM[system][2] if system in ON_SLURM else []
    cmd += extra or []
    return run_command(system, cmd, shape=shape, jobs=jobs, workers=workers, timeout=timeout)


def systems_arg(value: str, known: tuple[str, ...] = SYSTEMS) -> list[str]:
    names = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in names if s not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown system(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}"
        )
    return names


def selection_args(ap: argparse.ArgumentParser, systems: tuple[str, ...]) -> None:
    """``--systems`` (of ``systems``) and ``--shapes`` (layered, chain): what a comparison runs."""
    ap.add_argument(
        "--systems",
        type=lambda v: systems_arg(v, systems),
        default=list(systems),
        help=f"comma-separated (default {','.join(systems)})",
    )
    ap.add_argument(
        "--shapes",
        type=lambda v: [s for s in v.split(",") if s],
        default=["layered", "chain"],
        help="comma-separated: layered,chain",
    )


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", type=systems_arg, default=list(SYSTEMS), help="comma-separated")
    ap.add_argument("--shape", choices=shapes.SHAPES, default="layered")
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=1, help="runs of every system, interleaved")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per run")
    ap.add_argument(
        "--airflow-jobs", type=int, help="Airflow's size (default 500 layered, 100 chain)"
    )
    ap.add_argument("--prefect-jobs", type=int, help="Prefect's size (default --jobs)")
    return ap


def main() -> None:
    a = parser().parse_args()
    if a.jobs < shapes.minimum_jobs(a.shape):
        raise SystemExit(f"--jobs: a {a.shape} graph needs at least {shapes.minimum_jobs(a.shape)}")
    sizes = {"airflow": a.airflow_jobs, "prefect": a.prefect_jobs}
    rows: list[dict[str, Any]] = []
    for _ in range(a.repeat):
        for system in a.systems:
            jobs = jobs_for(system, a.shape, a.jobs, sizes)
            for row in run_peer(
                system, a.shape, jobs, workers=a.workers, seed=a.seed, timeout=a.timeout
            ):
                benchkit.emit(row)
                rows.append(row)
    print()
    print(benchkit.table(rows, TABLE))
    print(f"machine: {benchkit.machine()}; load {benchkit.load()}")


if __name__ == "__main__":
    main()
