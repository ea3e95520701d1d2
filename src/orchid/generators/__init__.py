"""The generator library: what proposes a study's points and stops its bad trials.

It sits below the engine (the HPO agent, :mod:`orchid.engine.hpo`, uses it) and above
``core`` (the ``hpo`` block, :mod:`orchid.core.hpo`; the trials, :mod:`orchid.core.study`);
it imports neither the engine nor the user-facing :mod:`orchid.hpo`.

- :mod:`~orchid.generators.base`: the generator Protocol and :func:`make_generator`;
- :mod:`~orchid.generators.samplers`: Optuna's samplers (TPE, GP, CMA-ES, random, grid,
  NSGA-II); :mod:`~orchid.generators.ngopt`: nevergrad's optimisers;
- :mod:`~orchid.generators.custom`: a user command that proposes points (the request it
  reads, the points it returns);
- :mod:`~orchid.generators.pruning`: early stopping (median, ASHA).

The modules with heavy imports (Optuna, nevergrad) are imported only when used.
"""

from orchid.generators.base import Generator, GeneratorError, Proposal, make_generator

__all__ = ["Generator", "GeneratorError", "Proposal", "make_generator"]
