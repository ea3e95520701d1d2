"""Bisection steps for f(x) = x^3 - 2x - 5 (root near 2.0945515), and a round's record."""

from __future__ import annotations


def f(x: float) -> float:
    return x**3 - 2 * x - 5


def step(lo: float, hi: float) -> dict[str, float]:
    mid = (lo + hi) / 2
    if f(lo) * f(mid) <= 0:
        hi = mid
    else:
        lo = mid
    return {"lo": lo, "hi": hi, "mid": mid, "width": hi - lo}


def record(tol: float, lo: float, hi: float, steps: int) -> dict[str, float]:
    """What one round of refinement reached: its bracket and the steps it took."""
    return {"tol": tol, "lo": lo, "hi": hi, "width": hi - lo, "steps": steps}
