"""The ``hpo`` block of a work: a search space, objectives, a strategy and its budget.

A work with ``hpo:`` runs its payload once per *trial*; a generator proposes each
trial's parameters from the trials that ended before it (asynchronous ask-and-tell).
This module holds the structure of that block (pydantic, so the JSON Schema shows
it) and the checks that span its fields, reported with the path of the field at
fault like every template check. Pure: nothing here imports an optimiser.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchid.core import expr
from orchid.errors import ExpressionError

PARAM_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
ParamName = Annotated[str, Field(pattern=PARAM_PATTERN, description="a Python identifier")]
SEGMENT_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$"
SegmentName = Annotated[str, Field(pattern=SEGMENT_PATTERN)]
Scalar = str | int | float | bool | None
Direction = Literal["minimize", "maximize"]
Strategy = Literal["tpe", "gp", "cmaes", "random", "grid", "nsga2", "nevergrad", "custom"]
STRATEGIES: tuple[str, ...] = Strategy.__args__  # type: ignore[attr-defined]
MAX_GRID = 1_000_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Param(_Model):
    when: str | None = Field(
        None,
        description="a condition over parameters listed before this one; the parameter "
        "exists (and is sampled) only in points where it holds",
    )


class FloatParam(_Param):
    """A real number in ``[low, high]``; ``log`` samples its logarithm uniformly."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0, description="discretise: low, low+step, ...")


class IntParam(_Param):
    """A whole number in ``[low, high]`` (both included)."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)


class CategoricalParam(_Param):
    """One of the listed choices (text, numbers, true/false, null)."""

    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class Objective(_Model):
    name: ParamName = Field(description="the field of the trial's result that holds it")
    direction: Direction = "minimize"


class PrunerSpec(_Model):
    """Stop trials early from the intermediate values they report (single objective)."""

    kind: Literal["median", "asha"] = Field(
        "median",
        description="median: stop a trial worse than the median of earlier trials at the "
        "same step; asha: asynchronous successive halving",
    )
    min_trials: int = Field(5, ge=0, description="median: trials that must end before pruning")
    warmup_steps: int = Field(0, ge=0, description="median: steps of each trial never pruned")
    min_resource: int = Field(1, ge=1, description="asha: steps before the first rung")
    reduction_factor: int = Field(3, ge=2, description="asha: 1/factor of trials go on")


class HpoSpec(_Model):
    """Hyperparameter optimisation: the work's payload runs once per trial."""

    space: dict[ParamName, Param] = Field(
        min_length=1, description="the parameters to tune, in order (conditions read earlier ones)"
    )
    objective: ParamName | None = Field(
        None, description="the result field to optimise; a result that is a number is it"
    )
    direction: Direction = "minimize"
    objectives: list[Objective] | None = Field(
        None, min_length=1, description="several objectives: a Pareto front (instead of objective)"
    )
    max_trials: int = Field(ge=1, le=100_000, description="trials per segment")
    parallel: int = Field(1, ge=1, le=10_000, description="trials run at once (all segments)")
    strategy: Strategy = "tpe"
    options: dict[str, Any] = Field(
        default_factory=dict, description="options of the strategy (see docs/templates.md)"
    )
    generator: list[str] | None = Field(
        None,
        description="strategy custom: the command that reads $ORCHID_ARGS_FILE (evaluated "
        "trials, JSON) and writes new points (a JSON list) to $ORCHID_RESULT_FILE",
    )
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="makes the proposals repeat")
    pruner: PrunerSpec | None = None
    segments: dict[SegmentName, dict[str, Any]] | None = Field(
        None,
        description="independent studies in one request, each with its own job arguments; "
        "they share the `parallel` slots fairly",
    )
    mode: Literal["jobs", "pull"] = Field(
        "jobs",
        description="jobs: Orchid runs the payload per trial; pull: external workers fetch "
        "points (`orchid hpo next`) and report losses",
    )
    lease: float = Field(
        600.0, gt=0, le=7 * 86400, description="pull: seconds a fetched point stays reserved"
    )

    def goals(self) -> list[Objective]:
        """The objectives, whichever way they were written."""
        if self.objectives:
            return list(self.objectives)
        return [Objective(name=self.objective or "loss", direction=self.direction)]

    def segment_names(self) -> list[str]:
        return list(self.segments) if self.segments else [""]

    def segment_args(self, segment: str) -> dict[str, Any]:
        return dict((self.segments or {}).get(segment, {}))


# options each strategy understands, and the JSON types of their values
OPTIONS: Mapping[str, Mapping[str, tuple[type, ...]]] = {
    "tpe": {"n_startup_trials": (int,), "multivariate": (bool,), "constant_liar": (bool,)},
    "gp": {"n_startup_trials": (int,)},
    "cmaes": {"sigma0": (int, float), "popsize": (int,), "n_startup_trials": (int,)},
    "random": {},
    "grid": {},
    "nsga2": {"population_size": (int,), "mutation_prob": (int, float)},
    "nevergrad": {"optimizer": (str,)},
    "custom": {"batch": (int,)},
}
SINGLE_OBJECTIVE = frozenset({"cmaes"})


def check(spec: HpoSpec, path: str, fixed_args: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Every problem of an ``hpo`` block that spans fields, each with its path.

    ``fixed_args`` are the names of the work's other job arguments (its ``parameters``),
    which a tuned parameter may not shadow.
    """
    out: list[tuple[str, str]] = []
    here = f"{path}.hpo"
    out += _check_space(spec, here)
    if spec.objective is not None and spec.objectives is not None:
        out.append((f"{here}.objectives", "give `objective` (and `direction`) or `objectives`"))
    goals = spec.goals()
    names = [g.name for g in goals]
    if len(set(names)) != len(names):
        out.append((f"{here}.objectives", f"objective names repeat: {names}"))
    if len(goals) > 1 and spec.strategy in SINGLE_OBJECTIVE:
        out.append(
            (f"{here}.strategy", f"{spec.strategy} optimises one objective; use nsga2 or tpe")
        )
    if len(goals) > 1 and spec.pruner is not None:
        out.append((f"{here}.pruner", "pruning needs a single objective"))
    known = OPTIONS[spec.strategy]
    for key, value in spec.options.items():
        if key not in known:
            listed = ", ".join(known) or "none"
            out.append(
                (f"{here}.options.{key}", f"{spec.strategy} has no option {key!r} ({listed})")
            )
        elif not isinstance(value, known[key]) or isinstance(value, bool) != (bool in known[key]):
            kinds = " or ".join(k.__name__ for k in known[key])
            out.append((f"{here}.options.{key}", f"must be {kinds}; got {value!r}"))
    if spec.strategy == "custom" and not spec.generator:
        out.append((f"{here}.generator", "strategy custom needs the generator command"))
    if spec.strategy != "custom" and spec.generator:
        out.append((f"{here}.generator", "is only for strategy custom"))
    if spec.strategy == "grid":
        out += _check_grid(spec, here)
    for seg, args in (spec.segments or {}).items():
        for name in args:
            if name in spec.space:
                out.append((f"{here}.segments.{seg}.{name}", f"'{name}' is a tuned parameter"))
    for name in sorted(set(fixed_args or ()) & set(spec.space)):
        out.append((f"{here}.space.{name}", f"'{name}' is also one of the work's parameters"))
    return out


def _check_space(spec: HpoSpec, here: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    earlier: list[str] = []
    for name, p in spec.space.items():
        where = f"{here}.space.{name}"
        if isinstance(p, FloatParam | IntParam):
            if not p.low <= p.high:
                out.append((where, f"low ({p.low}) must not be above high ({p.high})"))
            if p.log and p.low <= 0:
                out.append((f"{where}.log", f"a log scale needs low > 0; got {p.low}"))
            if p.log and p.step not in (None, 1):
                out.append((f"{where}.step", "a log scale cannot have a step"))
            if isinstance(p, FloatParam) and not (math.isfinite(p.low) and math.isfinite(p.high)):
                out.append((where, "low and high must be finite"))
        else:
            seen: list[Scalar] = []
            for c in p.choices:
                if any(c == s and type(c) is type(s) for s in seen):
                    out.append((f"{where}.choices", f"{c!r} is listed twice"))
                seen.append(c)
        if p.when is not None:
            try:
                refs = expr.parse(p.when).references()
            except ExpressionError as exc:
                out.append((f"{where}.when", str(exc)))
            else:
                for ref in sorted(refs):
                    if ref[0] not in earlier:
                        out.append(
                            (
                                f"{where}.when",
                                f"`{p.when}` reads '{ref[0]}', which is not a parameter listed "
                                f"before '{name}'",
                            )
                        )
        earlier.append(name)
    return out


def grid_values(p: FloatParam | IntParam | CategoricalParam) -> list[Scalar] | None:
    """The values a grid search tries for a parameter, or None if it has no finite grid."""
    if isinstance(p, CategoricalParam):
        return list(p.choices)
    if isinstance(p, IntParam):
        return list(range(p.low, p.high + 1, p.step)) if not p.log else None
    if p.step is None:
        return None
    n = math.floor((p.high - p.low) / p.step + 1e-9) + 1
    return [p.low + i * p.step for i in range(min(n, MAX_GRID + 1))]


def grid_size(spec: HpoSpec) -> int:
    size = 1
    for p in spec.space.values():
        size *= len(grid_values(p) or [])
    return size


def _check_grid(spec: HpoSpec, here: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, p in spec.space.items():
        if p.when is not None:
            out.append((f"{here}.space.{name}.when", "grid search has no conditional parameters"))
        if grid_values(p) is None:
            out.append(
                (
                    f"{here}.space.{name}",
                    "grid search needs a finite grid: give a float a `step` (an int: no log)",
                )
            )
    if not out and grid_size(spec) > MAX_GRID:
        out.append((f"{here}.space", f"the grid has more than {MAX_GRID:,} points"))
    return out


def active(spec: HpoSpec, name: str, point: Mapping[str, Any]) -> bool:
    """Whether a parameter exists in a point, given the values before it (its ``when``)."""
    p = spec.space[name]
    if p.when is None:
        return True
    try:
        return bool(expr.evaluate(p.when, dict(point)))
    except ExpressionError:
        return False  # it reads a parameter that is itself inactive


def check_point(spec: HpoSpec, point: Any) -> str | None:
    """Why a proposed point does not fit the space, or None if it does.

    Every active parameter must be present and in its range; inactive and unknown
    ones must be absent. Ints must be whole, floats finite.
    """
    if not isinstance(point, dict):
        return f"a point is a mapping of parameter to value; got {_brief(point)}"
    unknown = sorted(set(point) - set(spec.space))
    if unknown:
        return f"unknown parameters {unknown}; the space has {list(spec.space)}"
    seen: dict[str, Any] = {}
    for name, p in spec.space.items():
        if not active(spec, name, seen):
            if name in point:
                return f"'{name}' is given but its condition `{p.when}` does not hold"
            continue
        if name not in point:
            return f"'{name}' is missing"
        problem = _check_value(p, point[name])
        if problem:
            return f"'{name}': {problem}"
        seen[name] = point[name]
    return None


def _check_value(p: FloatParam | IntParam | CategoricalParam, v: Any) -> str | None:
    if isinstance(p, CategoricalParam):
        if not any(v == c and type(v) is type(c) for c in p.choices):
            return f"{_brief(v)} is not one of {p.choices}"
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        return f"must be a number; got {_brief(v)}"
    if isinstance(p, IntParam) and not isinstance(v, int):
        return f"must be a whole number; got {v!r}"
    if not math.isfinite(v):
        return "must be finite"
    slack = 1e-9 * max(1.0, abs(p.high - p.low))
    if not p.low - slack <= v <= p.high + slack:
        return f"{v!r} is outside [{p.low}, {p.high}]"
    return None


def _brief(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."
