"""Prometheus metrics and JSON logs: how operators watch Orchid with their usual tools."""

# The public surface: these modules (``from orchid.telemetry import logs``). Listing them
# imports none of them.
__all__ = [
    "logs",
    "metrics",
]
