"""Active learning of an exclusion contour over a mass plane, with a Gaussian process.

A toy search for a heavy X decaying to a light Zd: at each mass point (m_X, m_Zd) the
*observed* significance is the expected one (falling with m_X, vanishing as m_Zd nears
m_X / 2) plus a smooth "fluctuation of the data". Points where it exceeds 1.64 are
excluded at 95% CL. Each evaluation stands for an expensive fit; the learner wants the
contour z = 1.64 with as few of them as it can:

- ``initial``: a first batch of points spread over the plane;
- ``significance``: one evaluation (a job each, in parallel);
- ``decide``: fit a GP to every evaluation, find where the side of the contour is still
  uncertain (|mean - 1.64| < 1.96 sigma), pick the next batch there (the "straddle"
  acquisition), plot the state, and say whether the contour is known to the tolerance.
"""

from __future__ import annotations

import math
import os
import random
from typing import Any

LEVEL = 1.64  # one-sided 95% CL
M_X = (200.0, 1000.0)  # GeV
M_ZD = (5.0, 60.0)  # GeV
GRID = 60


def truth(m_x: float, m_zd: float) -> tuple[float, float]:
    """(expected, observed) significance of the toy model at a mass point."""
    signal = 55.0 * math.exp(-(m_x - M_X[0]) / 300.0) * max(0.0, 1.0 - (2.0 * m_zd / m_x) ** 2)
    expected = signal / math.sqrt(25.0)
    observed = expected + 0.8 * math.sin(m_x / 70.0) * math.cos(m_zd / 7.0)
    return expected, observed


def initial(n: int = 12, seed: int = 1) -> list[dict[str, float]]:
    """A first batch: one point in each of n strips of m_X, at random m_Zd (a Latin square)."""
    rng = random.Random(seed)
    cols = list(range(n))
    rng.shuffle(cols)
    return [
        {
            "m_x": M_X[0] + (i + rng.random()) / n * (M_X[1] - M_X[0]),
            "m_zd": M_ZD[0] + (cols[i] + rng.random()) / n * (M_ZD[1] - M_ZD[0]),
        }
        for i in range(n)
    ]


def significance(m_x: float, m_zd: float) -> dict[str, float]:
    """One (expensive, in real life) evaluation at a mass point."""
    expected, observed = truth(m_x, m_zd)
    return {"m_x": m_x, "m_zd": m_zd, "z_exp": expected, "z_obs": observed}


def _unit(m_x: float, m_zd: float) -> list[float]:
    return [(m_x - M_X[0]) / (M_X[1] - M_X[0]), (m_zd - M_ZD[0]) / (M_ZD[1] - M_ZD[0])]


def _mass(u: list[float]) -> dict[str, float]:
    return {"m_x": M_X[0] + u[0] * (M_X[1] - M_X[0]), "m_zd": M_ZD[0] + u[1] * (M_ZD[1] - M_ZD[0])}


def decide(
    history: list[dict[str, float]],
    iteration: int,
    batch: int = 8,
    tolerance: float = 0.03,
    plots: str = "plots",
) -> dict[str, Any]:
    """Fit the surrogate, measure what is still uncertain, pick the next points, plot."""
    import numpy as np
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    x = np.array([_unit(h["m_x"], h["m_zd"]) for h in history])
    y = np.array([h["z_obs"] for h in history])
    kernel = ConstantKernel(1.0) * RBF([0.2, 0.2], (1e-2, 2.0)) + WhiteKernel(1e-4, (1e-8, 1e-2))
    gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2, random_state=0)
    gp.fit(x, y)
    axis = np.linspace(0.0, 1.0, GRID)
    grid = np.array([[u, v] for v in axis for u in axis])
    mean, sd = gp.predict(grid, return_std=True)
    uncertain = np.abs(mean - LEVEL) < 1.96 * sd
    fraction = float(uncertain.mean())
    true_obs = np.array([truth(**_mass(list(g)))[1] for g in grid])
    wrong = float(((mean > LEVEL) != (true_obs > LEVEL)).mean())
    done = fraction < tolerance
    picked: list[np.ndarray] = []
    if not done:  # straddle: uncertain and near the contour; spread the batch out
        score = 1.96 * sd - np.abs(mean - LEVEL)
        for i in np.argsort(-score):
            if score[i] <= 0 or len(picked) >= batch:
                break
            near = [*picked, *x]
            if min(float(np.linalg.norm(grid[i] - p)) for p in near) > 0.04:
                picked.append(grid[i])
    nxt = [_mass(list(p)) for p in picked]
    plot = _plot(axis, mean, uncertain, true_obs, x, iteration, nxt, fraction, plots)
    return {
        "next_points": nxt,
        "done": done or not nxt,
        "uncertain_fraction": fraction,
        "misclassified_fraction": wrong,
        "evaluated": len(history),
        "iteration": iteration,
        "plot": plot,
    }


def _plot(
    axis: Any,
    mean: Any,
    uncertain: Any,
    true_obs: Any,
    x: Any,
    iteration: int,
    nxt: list[dict[str, float]],
    fraction: float,
    folder: str,
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    mx = M_X[0] + axis * (M_X[1] - M_X[0])
    mz = M_ZD[0] + axis * (M_ZD[1] - M_ZD[0])
    shape = (len(axis), len(axis))
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ax.contourf(mx, mz, uncertain.reshape(shape), levels=[0.5, 1.5], colors=["#f2d7a0"], alpha=0.8)
    ax.contour(mx, mz, true_obs.reshape(shape), levels=[LEVEL], colors="k", linestyles="--")
    ax.contour(mx, mz, mean.reshape(shape), levels=[LEVEL], colors="C0")
    pts = np.array([[_mass(list(p))["m_x"], _mass(list(p))["m_zd"]] for p in x])
    ax.scatter(pts[:, 0], pts[:, 1], s=12, c="C0", label=f"evaluated ({len(pts)})")
    if nxt:
        ax.scatter(
            [p["m_x"] for p in nxt], [p["m_zd"] for p in nxt], marker="x", c="C3", label="next"
        )
    ax.plot([], [], "k--", label="true contour")
    ax.plot([], [], "C0", label="GP contour")
    ax.set_xlabel("m_X [GeV]")
    ax.set_ylabel("m_Zd [GeV]")
    ax.set_title(f"iteration {iteration}: {fraction:.1%} of the plane uncertain")
    ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    os.makedirs(folder, exist_ok=True)
    path = os.path.abspath(os.path.join(folder, f"iteration_{iteration:02d}.png"))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
