"""The parameter-generator seam: ask for new points given every trial so far.

A generator is built fresh for each decision from the stored trials (``tell`` the
whole history, then ``ask``), so it holds nothing a crash could lose: the database
is the study. ``Proposal.system`` is what a generator wants back with the trial next
time (Optuna's sampler notes: a grid id, a CMA-ES generation); it is stored as JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from orchid.core.hpo import HpoSpec
from orchid.core.study import Trial
from orchid.errors import OrchidError
from orchid.extras import MissingExtra

__all__ = ["Generator", "GeneratorError", "Proposal", "Trial", "make_generator"]


class GeneratorError(OrchidError):
    """A generator could not propose points (bad options, a custom command that failed)."""


@dataclass(frozen=True)
class Proposal:
    """A new point to evaluate: one value per active parameter of the space."""

    params: Mapping[str, Any]
    system: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Generator(Protocol):
    """Proposes points for one segment of a study."""

    def tell(self, trials: Sequence[Trial]) -> None:
        """Every trial of the segment so far (running ones too), in any order."""
        ...

    def ask(self, n: int) -> list[Proposal]:
        """Up to ``n`` new points; fewer means the space is used up (a finished grid)."""
        ...


Factory = Callable[[HpoSpec, "int | None"], Generator]


def make_generator(spec: HpoSpec, seed: int | None) -> Generator:
    """The in-process generator of a strategy (``custom`` runs as a job: see custom.py)."""
    if spec.strategy == "nevergrad":
        from orchid.generators.ngopt import NevergradGenerator

        return NevergradGenerator(spec, seed)
    if spec.strategy == "custom":
        raise GeneratorError("strategy custom runs its generator command as a job")
    try:
        from orchid.generators.samplers import OptunaGenerator
    except MissingExtra as exc:  # the study fails, saying which extra to install
        raise GeneratorError(str(exc)) from None

    return OptunaGenerator(spec, seed)
