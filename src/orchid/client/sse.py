"""Server-sent events (``text/event-stream``), as ``GET /workflows/{id}/events`` sends them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

END = "end"  # the last event of a stream: the workflow ended and every change was sent


@dataclass(frozen=True)
class Event:
    """One change of a workflow: ``kind`` like ``work.succeeded``, ``data`` its JSON object.

    ``id`` orders events; pass the last one seen as ``after`` to pick up where a stream
    stopped. The ``end`` event has no id.
    """

    id: int | None
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def workflow_id(self) -> int | None:
        value = self.data.get("workflow_id")
        return value if isinstance(value, int) else None

    @property
    def at(self) -> float | None:
        """When it happened (epoch seconds)."""
        value = self.data.get("at")
        return float(value) if isinstance(value, int | float) else None


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of a stream (the WHATWG rules: ``field: value`` lines, a blank
    line ends an event, ``:`` starts a comment such as a keep-alive)."""
    event_id: str | None = None
    kind = ""
    data: list[str] = []
    for line in lines:
        if not line:
            if data or kind:
                yield _event(event_id, kind or "message", "\n".join(data))
            event_id, kind, data = None, "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id" and "\0" not in value:
            event_id = value
    # an event cut off by the end of the stream is dropped, as the standard says: it may be
    # incomplete, and a reconnection sends it again


def _event(event_id: str | None, kind: str, text: str) -> Event:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        value = {"text": text}
    if not isinstance(value, dict):
        value = {"value": value}
    ident = int(event_id) if event_id is not None and event_id.isdigit() else None
    return Event(id=ident, kind=kind, data=value)
