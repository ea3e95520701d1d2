"""Hyperparameter optimisation: build studies in Python, and the pieces the engine uses.

- :class:`Study` (with :func:`real`, :func:`integer`, :func:`choice`): a workflow with one
  hpo work, run here or submitted to a server;
- :mod:`orchid.hpo.trial`: what a trial's code calls (its parameters, intermediate values);
- :mod:`orchid.hpo.base`: the generator Protocol; ``samplers`` (Optuna), ``ngopt``
  (nevergrad) and ``custom`` (a user command) implement it; ``pruning``: early stopping.

The ``hpo`` block of a template is :mod:`orchid.core.hpo`; the agent that runs studies is
:mod:`orchid.engine.hpo`.
"""

from orchid.hpo.study import Study, StudyResult, choice, integer, real

__all__ = ["Study", "StudyResult", "choice", "integer", "real"]
