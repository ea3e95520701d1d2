"""Optuna's samplers as generators: TPE, GP, CMA-ES, random, grid and NSGA-II.

Each ``ask`` builds an in-memory Optuna study, adds every stored trial to it (with
its values, intermediate values and the sampler's own notes), and asks the sampler
for new trials, define-by-run, so conditional parameters are suggested only where
their condition holds. Points asked in one call see each other as running trials
(TPE's constant liar, NSGA-II's generations, the grid's visited points).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from orchid.extras import missing

try:
    import optuna
except ModuleNotFoundError as exc:
    raise missing("hpo", exc, "HPO with Optuna's samplers") from None
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState, create_trial

from orchid.core.hpo import CategoricalParam, FloatParam, HpoSpec, active, grid_size, grid_values
from orchid.core.study import Trial
from orchid.generators.base import GeneratorError, Proposal

# every decision builds a throw-away in-memory study; do not announce each one
logging.getLogger("optuna.storages._in_memory").setLevel(logging.WARNING)

_STATES = {
    "complete": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "failed": TrialState.FAIL,
    "running": TrialState.RUNNING,
    "waiting": TrialState.RUNNING,
}


def distributions(spec: HpoSpec) -> dict[str, BaseDistribution]:
    """Each parameter of the space as an Optuna distribution."""
    out: dict[str, BaseDistribution] = {}
    for name, p in spec.space.items():
        if isinstance(p, CategoricalParam):
            out[name] = CategoricalDistribution(p.choices)
        elif isinstance(p, FloatParam):
            out[name] = FloatDistribution(p.low, p.high, log=p.log, step=p.step)
        else:
            out[name] = IntDistribution(p.low, p.high, log=p.log, step=p.step)
    return out


def frozen(
    t: Trial, dists: Mapping[str, BaseDistribution], goals: int, values: bool = True
) -> FrozenTrial:
    """A stored trial as Optuna's ``FrozenTrial`` (complete ones with their values)."""
    state = _STATES[t.status]
    params = {k: v for k, v in t.params.items() if k in dists}
    kw: dict[str, Any] = {}
    if state == TrialState.COMPLETE:
        if not values or t.values is None:
            state = TrialState.FAIL
        elif goals == 1:
            kw["value"] = t.values[0]
        else:
            kw["values"] = list(t.values)
    return create_trial(
        state=state,
        params=params,
        distributions={k: dists[k] for k in params},
        intermediate_values={int(k): float(v) for k, v in t.intermediate.items()},
        system_attrs=dict(t.system),
        **kw,
    )


def study_of(spec: HpoSpec, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    directions = [g.direction for g in spec.goals()]
    return optuna.create_study(directions=directions, sampler=sampler)


def make_sampler(spec: HpoSpec, seed: int | None) -> optuna.samplers.BaseSampler:
    """The Optuna sampler a strategy names, with its options."""
    o = dict(spec.options)
    s = spec.strategy
    if s == "tpe":
        # multivariate by default for one objective, as Optuna 5 does: the independent TPE
        # (Optuna 4's default, once hard-coded here) trailed Optuna alone on Hartmann-6
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=o.get("n_startup_trials", 10),
            multivariate=o.get("multivariate", len(spec.goals()) == 1),
            constant_liar=o.get("constant_liar", spec.parallel > 1),
            warn_independent_sampling=False,
        )
    if s == "gp":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise GeneratorError(
                "strategy gp needs PyTorch (Optuna's GP sampler uses it): pip install torch"
            ) from None
        return optuna.samplers.GPSampler(
            seed=seed,
            n_startup_trials=o.get("n_startup_trials", 10),
            warn_independent_sampling=False,
        )
    if s == "cmaes":
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            sigma0=o.get("sigma0"),
            popsize=o.get("popsize"),
            n_startup_trials=o.get("n_startup_trials", 1),
            warn_independent_sampling=False,
        )
    if s == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s == "grid":
        grid = {name: grid_values(p) or [] for name, p in spec.space.items()}
        # the grid's order must not change between rebuilds: trials keep grid ids into it
        return optuna.samplers.GridSampler(grid, seed=spec.seed)
    if s == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=seed,
            population_size=o.get("population_size", 50),
            mutation_prob=o.get("mutation_prob"),
        )
    raise GeneratorError(f"{s} is not an Optuna strategy")


def suggest(
    spec: HpoSpec, trial: optuna.Trial, dists: Mapping[str, BaseDistribution]
) -> dict[str, Any]:
    """Define-by-run: suggest each parameter whose condition holds, in the space's order."""
    point: dict[str, Any] = {}
    for name in spec.space:
        if active(spec, name, point):
            point[name] = trial._suggest(name, dists[name])
    return point


class OptunaGenerator:
    """A generator over one of Optuna's samplers, rebuilt from the stored trials."""

    def __init__(self, spec: HpoSpec, seed: int | None) -> None:
        self.spec = spec
        self.seed = seed
        self._trials: list[Trial] = []

    def tell(self, trials: Sequence[Trial]) -> None:
        self._trials = sorted(trials, key=lambda t: t.number)

    def ask(self, n: int) -> list[Proposal]:
        spec = self.spec
        if spec.strategy == "grid":
            n = min(n, grid_size(spec) - len(self._trials))
        if n <= 0:
            return []
        dists = distributions(spec)
        goals = len(spec.goals())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature and fallback notices
            study = study_of(spec, make_sampler(spec, self.seed))
            study.add_trials([frozen(t, dists, goals) for t in self._trials])
            out: list[Proposal] = []
            for _ in range(n):
                trial = study.ask()
                point = {k: _plain(v) for k, v in suggest(spec, trial, dists).items()}
                system = study._storage.get_trial_system_attrs(trial._trial_id)
                out.append(Proposal(point, _json_safe(system)))
        return out


def _plain(v: Any) -> Any:
    """numpy scalars to Python ones (JSON)."""
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        return v.item()
    return v


def _json_safe(system: Mapping[str, Any]) -> dict[str, Any]:
    """Sampler notes round-trip through JSON (tuples become lists, as JSON keeps them)."""
    return dict(json.loads(json.dumps(dict(system), default=_plain)))
