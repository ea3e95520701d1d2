"""Nevergrad's optimisers as a generator (``strategy: nevergrad``, ``options.optimizer``).

Nevergrad optimisers accept points they did not propose, so the optimiser is rebuilt
by telling it every complete trial, in trial order, from a parametrization seeded with
the study's seed; then it is asked for new points. Nevergrad minimises: objectives to
maximise are told negated. Conditional parameters are part of the parametrization
always and dropped from a point where their condition does not hold (told with a
neutral value where a trial lacks them).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from orchid.core.hpo import CategoricalParam, FloatParam, HpoSpec, IntParam, active
from orchid.core.study import Trial
from orchid.extras import missing
from orchid.generators.base import GeneratorError, Proposal

DEFAULT_OPTIMIZER = "NGOpt"


def _parameter(p: FloatParam | IntParam | CategoricalParam) -> Any:
    import nevergrad as ng

    if isinstance(p, CategoricalParam):
        return ng.p.Choice(list(p.choices))
    kind = ng.p.Log if p.log else ng.p.Scalar
    if p.low == p.high:
        return ng.p.Choice([p.low])
    param = kind(lower=p.low, upper=p.high)
    if isinstance(p, IntParam):
        param = param.set_integer_casting()
    return param


def _neutral(p: FloatParam | IntParam | CategoricalParam) -> Any:
    if isinstance(p, CategoricalParam):
        return p.choices[0]
    mid = (p.low * p.high) ** 0.5 if p.log else (p.low + p.high) / 2
    return round(mid) if isinstance(p, IntParam) else mid


def _fit(p: FloatParam | IntParam | CategoricalParam, v: Any) -> Any:
    """A value nevergrad proposed, as the space holds it: in range, on the step, plain."""
    if isinstance(p, CategoricalParam):
        return v.item() if hasattr(v, "item") and not isinstance(v, str) else v
    x = min(max(float(v), p.low), p.high)
    if isinstance(p, IntParam):
        step = p.step
        return int(min(max(p.low + round((x - p.low) / step) * step, p.low), p.high))
    if p.step is not None:
        x = min(p.low + round((x - p.low) / p.step) * p.step, p.high)
    return x


class NevergradGenerator:
    """A nevergrad optimiser rebuilt from the stored trials."""

    def __init__(self, spec: HpoSpec, seed: int | None) -> None:
        self.spec = spec
        self.seed = seed
        self.name = str(spec.options.get("optimizer", DEFAULT_OPTIMIZER))
        self._trials: list[Trial] = []

    def tell(self, trials: Sequence[Trial]) -> None:
        self._trials = sorted(trials, key=lambda t: t.number)

    def ask(self, n: int) -> list[Proposal]:
        if n <= 0:
            return []
        try:
            import nevergrad as ng
        except ModuleNotFoundError as exc:
            raise GeneratorError(str(missing("hpo", exc, "strategy nevergrad"))) from None

        spec = self.spec
        goals = spec.goals()
        space = spec.space
        if self.name not in ng.optimizers.registry:
            raise GeneratorError(
                f"nevergrad has no optimizer {self.name!r}; e.g. NGOpt, TwoPointsDE, "
                "CMA, PSO, OnePlusOne (nevergrad.optimizers.registry lists them all)"
            )
        parametrization = ng.p.Dict(**{k: _parameter(p) for k, p in space.items()})
        if self.seed is not None:
            parametrization.random_state.seed(self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = ng.optimizers.registry[self.name](
                parametrization=parametrization,
                budget=spec.max_trials,
                num_workers=max(spec.parallel, 1),
            )
            for t in self._trials:
                if t.status != "complete" or t.values is None:
                    continue
                value = {k: t.params.get(k, _neutral(p)) for k, p in space.items()}
                losses = [
                    v if g.direction == "minimize" else -v
                    for v, g in zip(t.values, goals, strict=True)
                ]
                cand = opt.parametrization.spawn_child(new_value=value)
                opt.tell(cand, losses[0] if len(losses) == 1 else losses)
            out: list[Proposal] = []
            for _ in range(n):
                raw = opt.ask().value
                point: dict[str, Any] = {}
                for name, p in space.items():
                    if active(spec, name, point):
                        point[name] = _fit(p, raw[name])
                out.append(Proposal(point))
        return out
