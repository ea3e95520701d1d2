"""The ``orchid`` command line."""

# The public surface: these modules (``from orchid.cli import common``). Listing them
# imports none of them.
__all__ = [
    "common",
    "graph",
    "hpo",
    "joblist",
    "main",
    "progress",
    "service",
    "tokens",
]
