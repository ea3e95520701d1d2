"""Benchmark HPO: quality against Optuna alone, orchestration overhead, 1,000 trials in flight.

1. quality: Branin, Hartmann-6 and Rosenbrock-10 with TPE, `parallel` 1, 8 and 32, a
   fixed number of trials; the best value Orchid reaches (SQLite, every agent, trials as
   jobs) against Optuna alone with the same sampler and the same asynchrony (`parallel`
   trials in flight, the oldest ends first), mean over seeds. The studies are seeded, so
   Orchid proposes trial n from trials 0..n-parallel, whatever the timing: the figures
   repeat from run to run and machine to machine (same Optuna and NumPy). The objective
   runs in the executor, instantly, so `overhead_ms_per_trial` is Orchid's own cost per
   trial beyond what Optuna spends (a timing: it does not repeat).
2. overhead: the same with the local executor and a real process per trial (awk computes
   Branin: an instant objective), end to end.
3. concurrency: 1,000 trials held running at once (random sampler, in-process executor
   that ends the oldest 100 each round); the time from a batch of trials ending to their
   replacements being submitted, early in the run and late in it.

Prints one JSON object per line and a table.

    python bench/hpo.py                 # the full run (several minutes)
    python bench/hpo.py --quick         # fewer trials and seeds
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna

from orchid.core.states import TERMINAL_WORKFLOW
from orchid.core.study import Trial, seed_for, seen_by
from orchid.engine.runner import make_runner
from orchid.engine.submit import submit
from orchid.engine.templates import compile_template
from orchid.executors.base import JobSpec, JobUpdate
from orchid.generators.base import make_generator
from orchid.settings import Settings
from orchid.store import studies, workflows
from orchid.store import trials as trial_rows
from orchid.store.db import Database

optuna.logging.set_verbosity(optuna.logging.WARNING)
Objective = Callable[[Sequence[float]], float]


def branin(x: Sequence[float]) -> float:
    a, b, c, r, s, t = 1, 5.1 / (4 * math.pi**2), 5 / math.pi, 6, 10, 1 / (8 * math.pi)
    return a * (x[1] - b * x[0] ** 2 + c * x[0] - r) ** 2 + s * (1 - t) * math.cos(x[0]) + s


_HA = [
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
]
_HP = [
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
]
_HALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(x: Sequence[float]) -> float:
    return -sum(
        _HALPHA[i] * math.exp(-sum(_HA[i][j] * (x[j] - _HP[i][j] * 1e-4) ** 2 for j in range(6)))
        for i in range(4)
    )


def rosenbrock10(x: Sequence[float]) -> float:
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(9))


FUNCTIONS: dict[str, tuple[Objective, list[tuple[float, float]], float]] = {
    "branin": (branin, [(-5.0, 10.0), (0.0, 15.0)], 0.397887),
    "hartmann6": (hartmann6, [(0.0, 1.0)] * 6, -3.32237),
    "rosenbrock10": (rosenbrock10, [(-2.048, 2.048)] * 10, 0.0),
}


def point(args: dict[str, Any], dims: int) -> list[float]:
    return [float(args[f"x{i}"]) for i in range(dims)]


class InstantExecutor:
    """Evaluates each trial in the carrier's process; `per_poll` oldest jobs end per poll
    (1: asynchronous, oldest first), or once `hold` jobs are in flight, `per_poll` of them."""

    name = "instant"

    def __init__(
        self, f: Objective | None, dims: int, per_poll: int = 1, hold: int = 0, total: int = 0
    ) -> None:
        self.f, self.dims, self.per_poll, self.hold, self.total = f, dims, per_poll, hold, total
        self.submitted = 0
        self.running: deque[JobSpec] = deque()
        self.cycles: list[float] = []  # seconds from ending a batch to its replacements
        self._ended_at: float | None = None

    def capacity(self) -> int:
        return 100_000

    def submit(self, specs: Sequence[JobSpec]) -> None:
        if self._ended_at is not None and specs:
            self.cycles.append(time.perf_counter() - self._ended_at)
            self._ended_at = None
        self.running.extend(specs)
        self.submitted += len(specs)

    def poll(self) -> list[JobUpdate]:
        if len(self.running) < self.hold and self.submitted < self.total:
            return []
        out = []
        for _ in range(min(self.per_poll, len(self.running))):
            s = self.running.popleft()
            if s.payload.kind == "noop" or self.f is None:
                result: Any = {"loss": 0.0}
            else:
                result = {"loss": self.f(point(dict(s.args), self.dims))}
            out.append(JobUpdate(s.key, s.job_id, s.attempt, "succeeded", time.time(), 0, result))
        if out:
            self._ended_at = time.perf_counter()
        return out

    def cancel(self, keys: Sequence[str]) -> None:
        pass

    def close(self) -> None:
        pass


def template(
    fn: str,
    bounds: list[tuple[float, float]],
    trials: int,
    parallel: int,
    seed: int,
    strategy: str = "tpe",
    command: list[str] | None = None,
) -> dict[str, Any]:
    space = {f"x{i}": {"type": "float", "low": lo, "high": hi} for i, (lo, hi) in enumerate(bounds)}
    work: dict[str, Any] = {
        "name": "tune",
        "hpo": {
            "space": space,
            "max_trials": trials,
            "parallel": parallel,
            "strategy": strategy,
            "seed": seed,
            **({"options": {"n_startup_trials": 10}} if strategy == "tpe" else {}),
        },
    }
    if command:
        work["command"] = command
    else:
        work["function"] = "bench:objective"  # never imported: the instant executor evaluates
    return {"name": f"bench-{fn}", "works": [work]}


def run_orchid(
    home: Path, raw: dict[str, Any], executor: Any, workers: int = 8
) -> tuple[float, list[float]]:
    """Submit and run to the end with every agent; (wall seconds, losses in trial order)."""
    settings = Settings.load(
        env={},
        home=home,
        db=str(home / "orchid.db"),
        executor="local" if executor is None else "null",
        workers=workers,
        poll_interval=0.01,
    )
    db = Database(settings.db_url)
    db.upgrade()
    start = time.perf_counter()
    wf = submit(db, raw, base_dir=home, now=time.time())
    runner = make_runner(settings, db, executor=executor)
    exe = runner.executor

    def ended() -> bool:
        with db.engine.connect() as conn:
            return workflows.get(conn, wf).status in TERMINAL_WORKFLOW

    try:
        runner.run(until=ended, check_every=0.05)
    finally:
        exe.close()
    wall = time.perf_counter() - start
    with db.engine.connect() as conn:
        ((study, _, _),) = studies.of_workflow(conn, wf)
        losses = [
            t.values[0] if t.values else math.inf for t in trial_rows.trials_of(conn, study.id)
        ]
    db.dispose()
    return wall, losses


def run_optuna(
    f: Objective, bounds: list[tuple[float, float]], trials: int, parallel: int, seed: int
) -> tuple[float, list[float]]:
    """Optuna alone, the same sampler, `parallel` trials in flight, the oldest ends first."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=10, constant_liar=parallel > 1
        )
        study = optuna.create_study(sampler=sampler)
        dists = {
            f"x{i}": optuna.distributions.FloatDistribution(lo, hi)
            for i, (lo, hi) in enumerate(bounds)
        }
        flight: deque[optuna.trial.Trial] = deque()
        asked, losses = 0, []
        while len(losses) < trials:
            while len(flight) < parallel and asked < trials:
                flight.append(study.ask(dists))
                asked += 1
            t = flight.popleft()
            value = f([t.params[f"x{i}"] for i in range(len(bounds))])
            study.tell(t, value)
            losses.append(value)
    return time.perf_counter() - start, losses


def replay(
    f: Objective, bounds: list[tuple[float, float]], trials: int, parallel: int, seed: int
) -> tuple[float, list[float]]:
    """Orchid's rule for a seeded study without the engine (the oldest trial ends first):
    trial n from a generator seeded from the seed and n, told trials 0..n-1 as the HPO
    agent tells them. Its figures equal the engine's; many seeds cost little."""
    raw = template("replay", bounds, trials, parallel, seed)
    spec = compile_template(raw).template.work("tune").hpo
    assert spec is not None
    start, history = time.perf_counter(), []
    for n in range(trials):
        generator = make_generator(spec, seed_for(seed, 0, n))
        generator.tell(seen_by(history, n, parallel))
        (p,) = generator.ask(1)
        value = f(point(dict(p.params), len(bounds)))
        history.append(Trial(n, p.params, "complete", (value,), system=p.system))
    return time.perf_counter() - start, [t.values[0] for t in history if t.values]


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()[0]}


def quality(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    rows = []
    for fn, (f, bounds, optimum) in FUNCTIONS.items():
        for parallel in args.parallel:
            ours, theirs, walls, owalls = [], [], [], []
            for seed in range(args.seeds):
                home = tmp / f"{fn}-{parallel}-{seed}"
                home.mkdir()
                raw = template(fn, bounds, args.trials, parallel, seed)
                if args.replay:
                    wall, losses = replay(f, bounds, args.trials, parallel, seed)
                else:
                    wall, losses = run_orchid(home, raw, InstantExecutor(f, len(bounds)))
                owall, olosses = run_optuna(f, bounds, args.trials, parallel, seed)
                ours.append(min(losses))
                theirs.append(min(olosses))
                walls.append(wall)
                owalls.append(owall)
            rows.append(
                {
                    "bench": "quality",
                    "function": fn,
                    "strategy": "tpe",
                    "parallel": parallel,
                    "trials": args.trials,
                    "seeds": args.seeds,
                    "optimum": optimum,
                    "best": statistics.mean(ours),
                    "optuna_best": statistics.mean(theirs),
                    "overhead_ms_per_trial": 1000
                    * (statistics.mean(walls) - statistics.mean(owalls))
                    / args.trials,
                    "wall_s": statistics.mean(walls),
                    "optuna_wall_s": statistics.mean(owalls),
                    "executor": "replay (no engine)" if args.replay else "in-process",
                    **machine(),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


AWK_BRANIN = (
    "BEGIN{pi=atan2(0,-1); x=ARGV[1]; y=ARGV[2]; b=5.1/(4*pi*pi); c=5/pi;"
    ' v=(y-b*x*x+c*x-6)^2+10*(1-1/(8*pi))*cos(x)+10; printf "{\\"loss\\": %.12g}\\n", v}'
)


def overhead(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    rows = []
    f, bounds, _ = FUNCTIONS["branin"]
    for strategy in ("random", "tpe"):
        parallel = 8
        home = tmp / f"local-{strategy}"
        home.mkdir()
        raw = template(
            "branin",
            bounds,
            args.local_trials,
            parallel,
            0,
            strategy,
            command=["awk", AWK_BRANIN, "{x0}", "{x1}"],
        )
        wall, losses = run_orchid(home, raw, None, workers=parallel)
        if strategy == "tpe":
            owall, olosses = run_optuna(f, bounds, args.local_trials, parallel, 0)
        else:
            start = time.perf_counter()
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            study.optimize(
                lambda t: f([t.suggest_float("x0", -5, 10), t.suggest_float("x1", 0, 15)]),
                n_trials=args.local_trials,
            )
            owall, olosses = time.perf_counter() - start, [t.value for t in study.trials]
        rows.append(
            {
                "bench": "overhead",
                "function": "branin",
                "strategy": strategy,
                "parallel": parallel,
                "trials": args.local_trials,
                "best": min(losses),
                "optuna_best": min(olosses),
                "overhead_ms_per_trial": 1000 * (wall - owall) / args.local_trials,
                "wall_s": wall,
                "optuna_wall_s": owall,
                "executor": "local (awk per trial)",
                **machine(),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def concurrency(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    home = tmp / "concurrent"
    home.mkdir()
    bounds = [(0.0, 1.0)] * 2
    raw = template("noop", bounds, args.concurrent * 3, args.concurrent, 0, "random")
    ex = InstantExecutor(None, 2, per_poll=100, hold=args.concurrent, total=args.concurrent * 3)
    wall, losses = run_orchid(home, raw, ex)
    quarter = max(len(ex.cycles) // 4, 1)
    early, late = ex.cycles[:quarter], ex.cycles[-quarter:]
    row = {
        "bench": "concurrency",
        "function": "noop",
        "strategy": "random",
        "parallel": args.concurrent,
        "trials": len(losses),
        "best": None,
        "optuna_best": None,
        "overhead_ms_per_trial": 1000 * wall / len(losses),
        "wall_s": wall,
        "refill_ms_p50_early": 1000 * statistics.median(early),
        "refill_ms_p50_late": 1000 * statistics.median(late),
        "refill_ms_max": 1000 * max(ex.cycles),
        "cycles": len(ex.cycles),
        "executor": "in-process",
        **machine(),
    }
    print(json.dumps(row), flush=True)
    return [row]


def table(rows: list[dict[str, Any]]) -> None:
    print()
    print(
        f"{'bench':<12} {'function':<13} {'strategy':<8} {'par':>5} {'trials':>6} {'best':>10} "
        f"{'optuna':>10} {'ovh ms/tr':>9} {'wall s':>7}  notes"
    )
    for r in rows:
        best = "" if r["best"] is None else f"{r['best']:.4g}"
        ob = "" if r["optuna_best"] is None else f"{r['optuna_best']:.4g}"
        notes = r["executor"]
        if r["bench"] == "concurrency":
            notes += (
                f"; refill p50 {r['refill_ms_p50_early']:.0f} ms early, "
                f"{r['refill_ms_p50_late']:.0f} ms late, max {r['refill_ms_max']:.0f}"
            )
        print(
            f"{r['bench']:<12} {r['function']:<13} {r['strategy']:<8} {r['parallel']:>5} {r['trials']:>6} "
            f"{best:>10} {ob:>10} {r['overhead_ms_per_trial']:>9.1f} {r['wall_s']:>7.1f}  {notes}"
        )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--parallel", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--local-trials", type=int, default=200)
    p.add_argument("--concurrent", type=int, default=1000)
    p.add_argument("--quick", action="store_true", help="--trials 40 --seeds 1 --local-trials 80")
    p.add_argument("--only", choices=["quality", "overhead", "concurrency"])
    p.add_argument(
        "--replay",
        action="store_true",
        help="quality: replay Orchid's rule for seeded studies without the engine (same "
        "best values, far faster: for many seeds)",
    )
    args = p.parse_args()
    if args.quick:
        args.trials, args.seeds, args.local_trials = 40, 1, 80
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="orchid-bench-hpo-") as tmp:
        for name, part in (
            ("quality", quality),
            ("overhead", overhead),
            ("concurrency", concurrency),
        ):
            if args.only in (None, name):
                rows += part(args, Path(tmp))
    table(rows)
    print(
        f"\n{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
