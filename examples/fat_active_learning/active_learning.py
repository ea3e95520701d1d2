"""An active-learning loop as plain Python: propose points, evaluate them in parallel, refit,
stop when the estimate has converged.

    python examples/fat_active_learning/active_learning.py

The "detector" is a toy: its efficiency peaks at an unknown threshold (2.7). Each round
evaluates a batch of candidate thresholds as one work (a job each), fits a parabola to
everything measured so far (a job too), and proposes the next batch around the fitted
peak with a narrower spread. The loop is the workflow function's own `while`.
"""

from __future__ import annotations

import argparse
import math
import random

from orchid import task, workflow

TRUE_PEAK = 2.7


@task(retries=1)
def evaluate(threshold: float, seed: int) -> dict[str, float]:
    """A noisy measurement of the efficiency at one threshold (the expensive simulation)."""
    rng = random.Random(seed)
    efficiency = math.exp(-((threshold - TRUE_PEAK) ** 2) / 2.0) + rng.gauss(0, 0.01)
    return {"threshold": threshold, "efficiency": efficiency}


@task
def fit(points: list[dict[str, float]]) -> float:
    """Least-squares parabola through the points; the threshold where it peaks."""
    xs = [p["threshold"] for p in points]
    ys = [p["efficiency"] for p in points]
    s = [sum(x**k for x in xs) for k in range(5)]
    t = [sum(y * x**k for x, y in zip(xs, ys, strict=True)) for k in range(3)]
    a = [[s[4], s[3], s[2]], [s[3], s[2], s[1]], [s[2], s[1], s[0]]]
    c2, c1, _ = _solve(a, [t[2], t[1], t[0]])
    return -c1 / (2 * c2) if c2 < 0 else max(points, key=lambda p: p["efficiency"])["threshold"]


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for i in range(n):
        pivot = max(range(i, n), key=lambda r: abs(m[r][i]))
        m[i], m[pivot] = m[pivot], m[i]
        for r in range(n):
            if r != i:
                f = m[r][i] / m[i][i]
                m[r] = [v - f * w for v, w in zip(m[r], m[i], strict=True)]
    return [m[i][n] / m[i][i] for i in range(n)]


@workflow(name="active-learning")
def optimise(start: float, batch: int, tolerance: float, max_rounds: int = 10) -> dict:
    rng = random.Random(0)
    centre, spread, points, history = start, 2.0, [], []
    for round_ in range(max_rounds):
        proposals = [
            {"threshold": centre + spread * rng.uniform(-1, 1), "seed": round_ * batch + i}
            for i in range(batch)
        ]
        points += list(evaluate.map(proposals))  # values as jobs finish
        estimate = fit(points[-2 * batch :]).result()  # the points near the peak
        history.append(estimate)
        if abs(estimate - centre) < tolerance:
            return {"peak": estimate, "rounds": round_ + 1, "history": history}
        centre, spread = estimate, max(spread / 2, tolerance)
    return {"peak": centre, "rounds": max_rounds, "history": history}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--tolerance", type=float, default=0.02)
    args = parser.parse_args()
    out = optimise(args.start, args.batch, args.tolerance)
    for i, estimate in enumerate(out["history"], 1):
        print(f"round {i}: peak estimate {estimate:.4f}")
    print(f"converged after {out['rounds']} rounds: peak at {out['peak']:.3f} (true {TRUE_PEAK})")


if __name__ == "__main__":
    main()
