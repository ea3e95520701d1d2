"""The seam between the conductor and a transport: notifications in, delivered or an error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from orchid.errors import OrchidError


class DeliveryError(OrchidError):
    """A subscriber did not take a batch; the conductor tries again later."""


@dataclass(frozen=True)
class Notification:
    """One outbox event as subscribers see it.

    ``id`` is deterministic (``<source>-<event id>``): every retry of the same event carries
    the same id, so a subscriber that keeps the ids it has seen drops the duplicates that
    at-least-once delivery brings.
    """

    id: str
    event_id: int
    kind: str
    workflow_id: int
    workflow: str
    at: float
    data: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "workflow_id": self.workflow_id,
            "workflow": self.workflow,
            "at": self.at,
            "data": dict(self.data),
        }


@runtime_checkable
class Sender(Protocol):
    """A subscriber's transport. ``send`` returns once every notification was accepted."""

    def send(self, batch: Sequence[Notification]) -> None:
        """Deliver the batch, in order; raise :class:`DeliveryError` if any was not taken."""
        ...

    def close(self) -> None:
        """Release connections; a later ``send`` opens them again."""
        ...
