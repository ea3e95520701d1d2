"""Orchid: workflow orchestration for data-intensive science.

Workflows are graphs of works, each a group of jobs, kept in a relational
database and run by stateless agents. Start with ``orchid run TEMPLATE``.
"""

from orchid.errors import OrchidError, TemplateError

__version__ = "0.1.0"
__all__ = ["OrchidError", "TemplateError", "__version__"]
