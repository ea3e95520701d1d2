"""Hyperparameter optimisation for users: build studies in Python, report from trials.

- :class:`Study` (with :func:`real`, :func:`integer`, :func:`choice`): a workflow with one
  hpo work, run here or submitted to a server;
- :mod:`orchid.hpo.trial`: what a trial's code calls (its parameters, intermediate values).

This is the user-facing layer, above the engine. The ``hpo`` block of a template is
:mod:`orchid.core.hpo`; the generators and pruners (Optuna, nevergrad, a custom command)
are :mod:`orchid.generators`, below the engine; the agent that runs studies is
:mod:`orchid.engine.hpo`.
"""

from orchid.hpo.study import Study, StudyResult, choice, integer, real

__all__ = ["Study", "StudyResult", "choice", "integer", "real"]
