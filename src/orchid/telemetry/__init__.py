"""Prometheus metrics and JSON logs: how operators watch Orchid with their usual tools."""
