"""What every peer runner shares: its arguments, the graph, the timed payload, the row.

Standard library only: each runner imports it from the peer's own virtualenv (Orchid is
not installed there). A runner builds the graph of ``bench/shapes.py`` in its system,
runs ``timed`` (the no-op payload of ``bench/payload.py``, wrapped to note when it ran)
once per job with 2 workers, and prints one JSON line made by ``row``:

    python bench/peers/run_dask.py --shape layered --jobs 10000 --workers 2

The fields are those of ``bench/dag.py``. ``release_*`` (child ready minus parent end)
is something only Orchid records; the peers report the step latency (a child's start
minus its last parent's end, both taken inside the payload), which is what a user sees.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

import benchkit  # noqa: E402
import payload  # noqa: E402
import shapes  # noqa: E402

Span = tuple[float, float]


def parser(system: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=f"Run a bench/shapes.py DAG on {system}.")
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--shape", choices=shapes.SHAPES, default="layered")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    return ap


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the peer's server binds it itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def key(group: str, name: str) -> str:
    return f"{group}/{name}"


def graph(shape: str, jobs: int, seed: int) -> Iterator[tuple[str, list[str]]]:
    """``(job key, parent keys)``, parents first: the same graph Orchid runs."""
    for group, name, parents in shapes.generate(shape, jobs, seed):
        yield key(group, name), [key(g, n) for g, n in parents]


def timed(*_parents: Any, **_kwargs: Any) -> Span:
    """The payload every peer runs: the no-op, and when it started and ended (wall clock,
    seconds since the epoch). Parents' results may be passed in and are ignored."""
    start = time.time()
    payload.noop()
    return start, time.time()


def step_latencies(parents: dict[str, list[str]], spans: dict[str, Span]) -> list[float]:
    """For every job with parents: its start minus the latest end among its parents."""
    out = []
    for job, ps in parents.items():
        if ps and job in spans and all(p in spans for p in ps):
            out.append(spans[job][0] - max(spans[p][1] for p in ps))
    return sorted(out)


def row(
    system: str,
    a: argparse.Namespace,
    *,
    submit_s: float,
    run_s: float,
    parents: dict[str, list[str]],
    spans: dict[str, Span],
    peak_rss_mb: float,
    cpu_s: float | None = None,
    status: str = "succeeded",
    **extra: Any,
) -> dict[str, Any]:
    """The JSON row of one run (``extra`` adds fields such as ``db`` or a version)."""
    step = step_latencies(parents, spans)
    wall = submit_s + run_s
    done = len(spans)
    return {
        "system": system,
        "shape": a.shape,
        "jobs": a.jobs,
        "db": None,
        "agents": None,
        "executor": "local",
        "workers": a.workers,
        "submit_s": round(submit_s, 3),
        "run_s": round(run_s, 3),
        "wall_s": round(wall, 3),
        "jobs_per_s": round(a.jobs / wall, 1) if wall > 0 else None,
        "release_p50_ms": None,
        "release_p99_ms": None,
        "step_p50_ms": benchkit.ms(benchkit.percentile(step, 0.5)),
        "step_p99_ms": benchkit.ms(benchkit.percentile(step, 0.99)),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "cpu_s": None if cpu_s is None else round(cpu_s, 2),
        "status": status if done == a.jobs else f"{status}, {done}/{a.jobs} jobs ran",
        "load": benchkit.load(),
        **extra,
    }


def measure(
    system: str, a: argparse.Namespace, run: Callable[[], tuple[float, float, dict[str, Span]]]
) -> dict[str, Any]:
    """Run ``run`` (which returns submit seconds, run seconds and the spans) while the
    memory and CPU of this process tree are measured; return the row.

    Whatever the runner starts before calling this (a cluster, a server) counts in the
    memory but not in the CPU figure, which covers ``run`` alone."""
    parents = dict(graph(a.shape, a.jobs, a.seed))
    with benchkit.PeakRss() as rss:
        cpu0 = benchkit.tree_cpu_s(os.getpid())
        submit_s, run_s, spans = run()
        cpu = benchkit.tree_cpu_s(os.getpid()) - cpu0
    return row(
        system,
        a,
        submit_s=submit_s,
        run_s=run_s,
        parents=parents,
        spans=spans,
        peak_rss_mb=rss.peak,
        cpu_s=cpu,
    )
