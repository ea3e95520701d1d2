"""Early stopping from intermediate values: Optuna's median and successive-halving pruners.

Like the generators, a pruner is rebuilt from the stored trials for each decision. ASHA
keeps its rung promotions in the trial's notes (``system``), which are returned to be
stored with the trial.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from orchid.extras import missing

try:
    import optuna
except ModuleNotFoundError as exc:
    raise missing("hpo", exc, "HPO pruning") from None

from orchid.core.hpo import HpoSpec, PrunerSpec
from orchid.core.study import Trial
from orchid.generators.samplers import distributions, frozen, study_of


def make_pruner(p: PrunerSpec) -> optuna.pruners.BasePruner:
    if p.kind == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_resource, reduction_factor=p.reduction_factor
        )
    return optuna.pruners.MedianPruner(n_startup_trials=p.min_trials, n_warmup_steps=p.warmup_steps)


def decide(
    spec: HpoSpec, trials: Sequence[Trial], running: Sequence[int]
) -> dict[int, tuple[bool, Mapping[str, Any]]]:
    """For each running trial number that reported intermediate values: prune it?, and
    the pruner's notes to keep with it."""
    if spec.pruner is None:
        return {}
    ordered = sorted(trials, key=lambda t: t.number)
    wanted = {n for n in running}
    dists = distributions(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = study_of(spec, optuna.samplers.RandomSampler(seed=0))
        study.add_trials([frozen(t, dists, 1) for t in ordered])
        pruner = make_pruner(spec.pruner)
        out: dict[int, tuple[bool, Mapping[str, Any]]] = {}
        stored = study.get_trials(deepcopy=False)
        for t, ft in zip(ordered, stored, strict=True):
            if t.number not in wanted or not t.intermediate:
                continue
            prune = bool(pruner.prune(study, ft))
            notes = study._storage.get_trial_system_attrs(ft._trial_id)
            out[t.number] = (prune, dict(notes))
    return out
