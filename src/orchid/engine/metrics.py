"""What the agents report about themselves, behind a small seam (Prometheus plugs in here).

Agents call these at most a few times per batch; the default does nothing, so an engine
without metrics (``orchid run``, the tests) pays one no-op call per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class EngineMetrics(Protocol):
    def agent_round(self, agent: str, seconds: float) -> None:
        """One ``run_once`` of an agent took ``seconds``."""
        ...

    def claim(self, agent: str, seconds: float, rows: int) -> None:
        """An agent's claim statement took ``seconds`` and leased ``rows`` rows."""
        ...

    def released(self, now: float, ended_at: Sequence[float]) -> None:
        """The trigger passed on, at ``now``, the ends of jobs that succeeded at ``ended_at``:
        their children are released (the release latency is ``now - ended``)."""
        ...


class NoMetrics:
    def agent_round(self, agent: str, seconds: float) -> None:
        pass

    def claim(self, agent: str, seconds: float, rows: int) -> None:
        pass

    def released(self, now: float, ended_at: Sequence[float]) -> None:
        pass


NO_METRICS: EngineMetrics = NoMetrics()
