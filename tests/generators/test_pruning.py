"""Pruners decide from stored trials alone: median and successive halving (ASHA)."""

from __future__ import annotations

from typing import Any

from orchid.core.hpo import HpoSpec
from orchid.core.study import Trial
from orchid.generators.pruning import decide


def spec(**pruner: Any) -> HpoSpec:
    return HpoSpec.model_validate(
        {"space": {"x": {"type": "float", "low": 0, "high": 1}}, "max_trials": 50, "pruner": pruner}
    )


def curve(number: int, level: float, steps: int, status: str = "complete") -> Trial:
    inter = {s: level + 1.0 / (s + 1) for s in range(steps)}
    values = (inter[steps - 1],) if status == "complete" else None
    return Trial(number, {"x": 0.5}, status, values, inter)  # type: ignore[arg-type]


def test_median_prunes_a_trial_worse_than_the_median_at_its_step() -> None:
    done = [curve(i, 0.1 * i, 6) for i in range(5)]
    bad, good = curve(5, 5.0, 3, "running"), curve(6, 0.0, 3, "running")
    out = decide(spec(kind="median", min_trials=3), [*done, bad, good], [5, 6])
    assert out[5][0] is True and out[6][0] is False


def test_median_waits_for_min_trials_and_warmup_steps() -> None:
    done = [curve(i, 0.1 * i, 6) for i in range(2)]
    bad = curve(2, 5.0, 3, "running")
    assert decide(spec(kind="median", min_trials=3), [*done, bad], [2])[2][0] is False
    done = [curve(i, 0.1 * i, 6) for i in range(5)]
    early = curve(5, 5.0, 2, "running")  # reported steps 0 and 1 only
    assert (
        decide(spec(kind="median", min_trials=3, warmup_steps=4), [*done, early], [5])[5][0]
        is False
    )


def test_asha_keeps_its_rungs_in_the_trials_notes() -> None:
    trials = [curve(i, 0.1 * i, 2, "running") for i in range(9)]  # steps 0, 1: rung 0
    out = decide(spec(kind="asha", min_resource=1, reduction_factor=3), trials, list(range(9)))
    assert any(notes for _, notes in out.values())  # completed_rung_* recorded
    assert out[0][0] is False  # the best of the rung goes on
    assert sum(prune for prune, _ in out.values()) >= 5  # most of the rest stop
