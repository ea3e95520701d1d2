"""One contract, every strategy: points fit the space (log, int, categorical, conditional),
a seed repeats a run, the generator is rebuilt from stored trials at every step."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchid.core.hpo import HpoSpec, active, check_point, grid_size
from orchid.core.study import Trial, seed_for
from orchid.generators.base import Generator, GeneratorError, make_generator
from orchid.generators.custom import CommandGenerator

HERE = Path(__file__).parent
SPACE: dict[str, Any] = {
    "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "units": {"type": "int", "low": 8, "high": 256, "log": True},
    "depth": {"type": "int", "low": 1, "high": 6},
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd", "rmsprop"]},
    "momentum": {"type": "float", "low": 0.0, "high": 0.99, "when": "optimizer == 'sgd'"},
    "nesterov": {"type": "categorical", "choices": [True, False], "when": "momentum > 0.5"},
}
GRID_SPACE: dict[str, Any] = {
    "x": {"type": "float", "low": -1.0, "high": 1.0, "step": 0.5},
    "k": {"type": "int", "low": 1, "high": 3},
    "c": {"type": "categorical", "choices": ["a", None, 2]},
}
HAVE_TORCH = importlib.util.find_spec("torch") is not None
STRATEGIES = [
    "tpe",
    pytest.param("gp", marks=pytest.mark.skipif(not HAVE_TORCH, reason="gp needs torch")),
    "cmaes",
    "random",
    "nsga2",
    "nevergrad",
    "custom",
]
FAST_OPTIONS: dict[str, dict[str, Any]] = {
    "tpe": {"n_startup_trials": 4},
    "gp": {"n_startup_trials": 4},
    "cmaes": {"popsize": 4},
    "nsga2": {"population_size": 4},
    "nevergrad": {"optimizer": "TwoPointsDE"},
}


def spec_for(strategy: str, space: dict[str, Any] | None = None, **kw: Any) -> HpoSpec:
    raw: dict[str, Any] = {
        "space": space or SPACE,
        "max_trials": 100,
        "parallel": 3,
        "strategy": strategy,
        "options": FAST_OPTIONS.get(strategy, {}),
        **kw,
    }
    if strategy == "custom":
        raw["generator"] = [sys.executable, str(HERE / "random_generator.py")]
    return HpoSpec.model_validate(raw)


def build(spec: HpoSpec, seed: int | None) -> Generator:
    if spec.strategy == "custom":
        return CommandGenerator(spec, seed, cwd=HERE)
    return make_generator(spec, seed)


def loss(p: dict[str, Any]) -> float:
    """A toy objective over SPACE: best near lr=1e-3, 64 units, depth 3, adam."""
    value = (math.log10(p["lr"]) + 3) ** 2 + (math.log2(p["units"]) - 6) ** 2 / 4
    value += (p["depth"] - 3) ** 2 / 9 + {"adam": 0.0, "sgd": 0.3, "rmsprop": 0.5}[p["optimizer"]]
    return value - 0.2 * p.get("momentum", 0.0)


def quad(p: dict[str, Any]) -> float:
    return float(p["x"] ** 2 + p["k"] + (p["c"] == "a"))


def optimise(
    spec: HpoSpec, seed: int | None, trials: int, batch: int, f: Callable[[dict[str, Any]], Any]
) -> list[Trial]:
    """Ask-and-tell as the engine does it: a fresh generator per step, told every trial."""
    history: list[Trial] = []
    while len(history) < trials:
        gen = build(spec, seed_for(seed, 0, len(history)))
        gen.tell(history)
        proposals = gen.ask(min(batch, trials - len(history)))
        if not proposals:
            break
        for p in proposals:
            value = f(dict(p.params))
            values = tuple(value) if isinstance(value, tuple) else (value,)
            history.append(
                Trial(len(history), dict(p.params), "complete", values, system=dict(p.system))
            )
    return history


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_points_fit_the_space_and_conditions(strategy: str) -> None:
    spec = spec_for(strategy)
    n = 5 if strategy == "gp" else 12  # a GP fit per point: slow on a mixed space
    trials = optimise(spec, 1, n, 1 if strategy == "gp" else 3, loss)
    assert len(trials) == n
    for t in trials:
        assert check_point(spec, dict(t.params)) is None, t.params
        assert ("momentum" in t.params) == (t.params["optimizer"] == "sgd")
        assert ("nesterov" in t.params) == (t.params.get("momentum", 0) > 0.5)
        assert isinstance(t.params["units"], int) and isinstance(t.params["depth"], int)
        assert isinstance(t.params["lr"], float) and 1e-5 <= t.params["lr"] <= 1e-1
    # a log scale reaches its small end, which a uniform draw almost never does
    assert min(t.params["lr"] for t in trials) < 1e-3 or strategy == "gp"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_seed_repeats_the_run(strategy: str) -> None:
    spec, f = spec_for(strategy), loss
    if strategy == "gp":  # a small space keeps the GP fits fast
        spec, f = (
            spec_for(strategy, GRID_SPACE | {"x": {"type": "float", "low": -1.0, "high": 1.0}}),
            quad,
        )
    first = [dict(t.params) for t in optimise(spec, 7, 9, 3, f)]
    again = [dict(t.params) for t in optimise(spec, 7, 9, 3, f)]
    other = [dict(t.params) for t in optimise(spec, 8, 9, 3, f)]
    assert first == again
    assert first != other


@pytest.mark.parametrize("strategy", ["tpe", "random", "nsga2", "nevergrad", "custom"])
def test_several_objectives(strategy: str) -> None:
    spec = spec_for(
        strategy,
        objectives=[{"name": "loss"}, {"name": "size", "direction": "maximize"}],
    )
    trials = optimise(spec, 3, 8, 4, lambda p: (loss(p), float(p["units"])))
    assert len(trials) == 8
    assert all(check_point(spec, dict(t.params)) is None for t in trials)


def test_grid_visits_every_point_once_then_stops() -> None:
    spec = spec_for("grid", GRID_SPACE)
    assert grid_size(spec) == 5 * 3 * 3
    trials = optimise(spec, 0, 100, 4, lambda p: p["x"] ** 2 + p["k"])
    points = [tuple(sorted(t.params.items(), key=lambda kv: kv[0])) for t in trials]
    assert len(points) == 45 == len(set(points))
    assert all(check_point(spec, dict(t.params)) is None for t in trials)


def test_tpe_improves_on_random() -> None:
    """The generator learns from the told history (not only random draws)."""
    space = {"x": {"type": "float", "low": -5.0, "high": 5.0}}

    def best(strategy: str) -> float:
        spec = spec_for(
            strategy, space, options={"n_startup_trials": 5} if strategy == "tpe" else {}
        )
        trials = optimise(spec, 11, 30, 1, lambda p: (p["x"] - 1.234) ** 2)
        return min(t.values[0] for t in trials if t.values)

    assert best("tpe") < best("random")


def test_nevergrad_refuses_an_unknown_optimizer() -> None:
    spec = spec_for("nevergrad", options={"optimizer": "NoSuchThing"})
    with pytest.raises(GeneratorError, match="no optimizer 'NoSuchThing'"):
        make_generator(spec, 1).ask(1)


def test_a_failing_custom_generator_says_why(tmp_path: Path) -> None:
    spec = spec_for("custom")
    gen = CommandGenerator(
        spec, 1, command=[sys.executable, "-c", "import sys; sys.exit('no luck')"]
    )
    with pytest.raises(GeneratorError, match="exited with 1: no luck"):
        gen.ask(2)
    bad = CommandGenerator(spec, 1, command=[sys.executable, "-c", "print('[{\"lr\": 5}]')"])
    with pytest.raises(GeneratorError, match=r"point 0 .* 'lr': 5 is outside"):
        bad.ask(2)


def test_conditional_parameters_follow_their_condition() -> None:
    spec = spec_for("random")
    assert active(spec, "momentum", {"optimizer": "sgd"})
    assert not active(spec, "momentum", {"optimizer": "adam"})
    assert check_point(
        spec, {"lr": 0.01, "units": 8, "depth": 1, "optimizer": "adam", "momentum": 0.1}
    )
    assert "missing" in str(
        check_point(spec, {"lr": 0.01, "units": 8, "depth": 1, "optimizer": "sgd"})
    )


def test_tpe_is_multivariate_for_one_objective_as_optuna_alone_is() -> None:
    """Optuna 5's default; the independent TPE (Optuna 4's) trailed Optuna alone."""
    from orchid.generators.samplers import make_sampler

    def multivariate(**kw: Any) -> Any:
        sampler = make_sampler(spec_for("tpe", **kw), 0)
        return sampler._multivariate  # type: ignore[attr-defined]

    assert multivariate() is True
    two = [{"name": "a", "direction": "minimize"}, {"name": "b", "direction": "maximize"}]
    assert multivariate(objectives=two) is False
    assert multivariate(options={"multivariate": False}) is False
