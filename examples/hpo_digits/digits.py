"""Tune a support-vector classifier on scikit-learn's digits (shipped with it: no download).

``objective`` is one trial: 3-fold cross-validated error of an SVC with the trial's
parameters. ``report`` runs after the study: it plots the loss of every trial and the
best so far, and returns the best parameters.
"""

from __future__ import annotations

import os
from typing import Any


def objective(
    C: float,  # noqa: N803 - scikit-learn's name
    gamma: float,
    kernel: str,
    degree: int = 3,
    folds: int = 3,
) -> dict[str, float]:
    """One trial: the cross-validated error rate (the loss to minimise) and accuracy."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    x, y = load_digits(return_X_y=True)
    model = SVC(C=C, gamma=gamma, kernel=kernel, degree=degree)
    accuracy = float(cross_val_score(model, x / 16.0, y, cv=folds).mean())
    return {"loss": 1.0 - accuracy, "accuracy": accuracy}


def report(study: dict[str, Any], plot: str = "loss_vs_trial.png") -> dict[str, Any]:
    """Plot loss against trial number (and the running best); return the best trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [h[0] if h else None for h in study["history"]]
    done = [(i, v) for i, v in enumerate(losses) if v is not None]
    best, running = float("inf"), []
    for _, v in done:
        best = min(best, v)
        running.append(best)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([i for i, _ in done], [v for _, v in done], s=18, label="trial")
    ax.step([i for i, _ in done], running, where="post", color="C1", label="best so far")
    ax.set_yscale("log")
    ax.set_xlabel("trial")
    ax.set_ylabel("cross-validated error")
    ax.set_title(f"SVC on digits: {len(losses)} trials, best {study['best']['value']:.4f}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(plot, dpi=100)
    plt.close(fig)
    return {
        "best_params": study["best"]["params"],
        "best_loss": study["best"]["value"],
        "trials": len(losses),
        "plot": os.path.abspath(plot),
    }
