"""Agents: stateless reconcilers that claim rows, decide with ``core`` and write the result."""
