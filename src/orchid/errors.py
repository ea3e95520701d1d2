"""The exception tree: one root, one subtree per layer.

Front ends (the CLI now, the REST API later) map these to exit codes and HTTP
statuses in one place; nothing below them formats errors for people.
"""

from __future__ import annotations


class OrchidError(Exception):
    """Root of every error Orchid raises on purpose."""


# --- core: bad input found before anything runs -----------------------------------------


class InvalidInput(OrchidError):
    """The user gave something Orchid cannot accept; the message says how to fix it.

    ``field`` names the offending part of the input (``params.energy``) when there is one,
    so that front ends can point at it.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TemplateError(InvalidInput):
    """A workflow template is malformed. Carries every problem found, each with its path."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = [f"  {path or '<template>'}: {msg}" for path, msg in problems]
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(
            f"invalid template ({len(problems)} {noun}):\n" + "\n".join(lines),
            field=problems[0][0] if problems else None,
        )


class ExpressionError(InvalidInput):
    """A condition or binding expression does not parse or cannot be evaluated."""


class QuotaExceeded(InvalidInput):
    """A request would pass a limit (``orchid quota``): which, its value, how much is used.

    ``rate``: a limit on what accumulates over time (workflows a day, jobs queued, cache
    bytes), HTTP 429 (try later); otherwise the request itself is too big, 422."""

    def __init__(
        self, quota: str, subject: str, value: int, used: int, *, rate: bool, hint: str = ""
    ) -> None:
        """``hint``: what to do, when neither waiting nor a smaller request helps."""
        super().__init__(
            f"limit {quota} of {subject} is {value}, {used} used: "
            + (
                hint
                or (
                    "wait for some to end, or ask an admin to raise it (`orchid quota set`)"
                    if rate
                    else "make the request smaller, or ask an admin to raise it"
                )
            ),
            field=f"quota.{quota}",
        )
        self.quota = quota
        self.subject = subject
        self.value = value
        self.used = used
        self.rate = rate


class InvalidTransition(OrchidError):
    """A status change that the entity's transition table does not allow (a bug or a race)."""


class LeaseLost(InvalidTransition):
    """A worker reported (or renewed) attempts its lease no longer holds: they ran out and
    were run again, were cancelled, or ended. Nothing of the report was recorded."""

    def __init__(self, message: str, attempts: list[tuple[int, int]]) -> None:
        super().__init__(message)
        self.attempts = attempts  # (job id, attempt) refused


# --- store ------------------------------------------------------------------------------


class StoreError(OrchidError):
    """The database could not do what was asked."""


class NotFound(StoreError):
    """No such workflow, work or job."""


class Archived(StoreError):
    """The workflow's rows are in its archive file (retention): only its summary is live.
    The message says how to restore it (HTTP 410)."""


# --- executors / data managers -----------------------------------------------------------


class ExecutorError(OrchidError):
    """A workload system refused or lost a job."""


class DataManagerError(OrchidError):
    """A data system (tape library, disk folder, Rucio) refused a request or could not be reached."""


class UnknownCollection(DataManagerError):
    """The data manager has no collection (dataset, folder) of that name."""


class ConfigError(InvalidInput):
    """Settings (file, environment, command line) are wrong."""
