"""One bisection step for f(x) = x^3 - 2x - 5 (root near 2.0945515)."""

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
