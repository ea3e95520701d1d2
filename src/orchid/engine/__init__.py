"""Agents: stateless reconcilers that claim rows, decide with ``core`` and write the result."""

# The public surface: these modules (``from orchid.engine import agent``). Listing them
# imports none of them.
__all__ = [
    "agent",
    "archivist",
    "carrier",
    "clerk",
    "conductor",
    "coordinator",
    "extend",
    "hpo",
    "hpo_ops",
    "metrics",
    "runner",
    "submit",
    "templates",
    "transformer",
    "transporter",
    "trigger",
]
