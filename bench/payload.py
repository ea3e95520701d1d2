"""The no-op Python payload every system runs in the benchmarks."""

from __future__ import annotations

from typing import Any


def noop(**_: Any) -> None:
    """Do nothing: what is measured is the orchestrator, not the job."""
