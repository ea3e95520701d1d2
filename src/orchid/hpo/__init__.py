"""Hyperparameter optimisation: parameter generators, pruners, and the payload helpers.

The ``hpo`` block of a template (``orchid.core.hpo``) says what to optimise; the HPO
agent (``orchid.engine.hpo``) runs it with the generators of this package.
"""
