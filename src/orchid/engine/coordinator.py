"""The coordinator: which agent step runs next, from the topics the bus delivered.

Pure bookkeeping, no I/O. Topics that arrive while the loop works are merged (a hundred
"jobs ended" notifications cost one trigger run), and handed out in rounds: every topic
pending when a round starts runs once in it, most urgent first, so finishing work —
collecting results, passing ends on — comes before new work, and nothing starves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

EVERYTHING = "*"


class Coordinator:
    """Pending topics, merged, handed out by priority (``priority[0]`` first)."""

    def __init__(self, priority: Sequence[str]) -> None:
        self._rank = {topic: i for i, topic in enumerate(priority)}
        self._pending: set[str] = set()

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def add(self, topics: Iterable[str]) -> None:
        """Topics to run; ``*`` means every known topic (after a poll, or missed messages)."""
        for topic in topics:
            if topic == EVERYTHING:
                self._pending.update(self._rank)
            else:
                self._pending.add(topic)

    def round(self) -> list[str]:
        """The topics of the next round, most urgent first (unknown ones last, by name)."""
        last = len(self._rank)
        out = sorted(self._pending, key=lambda t: (self._rank.get(t, last), t))
        self._pending.clear()
        return out
