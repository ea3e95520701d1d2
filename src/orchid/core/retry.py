"""How a failed job is tried again: one typed value, as Temporal's ``RetryPolicy``.

A work's policy comes from its template (``retries``, ``retry_delay``, ``retry_backoff``,
``retry_max_delay``, each defaulting to ``defaults``) and is passed whole from the
template to where a failure is recorded, instead of as loose numbers through each layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_INTERVAL = 3600.0
"""The default longest wait between two attempts: an hour. Without a cap, exponential
back-off told a job with ``retries: 100`` to wait 2^99 seconds."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When, and how often, a failed job runs again."""

    initial_interval: float = 1.0
    """Seconds between the first attempt's failure and the second attempt."""

    backoff_coefficient: float = 2.0
    """How many times longer each wait is than the one before (1: always the same)."""

    maximum_interval: float = MAX_INTERVAL
    """The longest wait between two attempts, whatever the back-off."""

    maximum_attempts: int = 1
    """Attempts in all, the first included (1: no retry). A user's ``orchid retry`` grants
    more to the jobs it runs again; those are counted on each job, not here."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial_interval) and self.initial_interval >= 0):
            raise ValueError(f"initial_interval must be at least 0; got {self.initial_interval}")
        if not (math.isfinite(self.backoff_coefficient) and self.backoff_coefficient >= 1):
            raise ValueError(
                f"backoff_coefficient must be at least 1; got {self.backoff_coefficient}"
            )
        if not (math.isfinite(self.maximum_interval) and self.maximum_interval >= 0):
            raise ValueError(f"maximum_interval must be at least 0; got {self.maximum_interval}")
        if self.maximum_attempts < 1:
            raise ValueError(f"maximum_attempts must be at least 1; got {self.maximum_attempts}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after attempt number ``attempt`` (1 for the first) failed:
        ``initial_interval * backoff_coefficient ** (attempt - 1)``, at most
        ``maximum_interval``. Never overflows, whatever the attempt."""
        first, cap = self.initial_interval, self.maximum_interval
        steps = max(attempt - 1, 0)
        if first <= 0 or cap <= 0:
            return 0.0
        if first >= cap:
            return cap
        if self.backoff_coefficient == 1 or steps == 0:
            return first
        # compare in logarithms: the uncapped value may be far beyond any float
        if math.log(first) + steps * math.log(self.backoff_coefficient) >= math.log(cap):
            return cap
        return min(cap, first * self.backoff_coefficient**steps)


NO_RETRY = RetryPolicy()
