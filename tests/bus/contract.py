"""The contract every event bus honours, as a reusable test base class.

Subclass :class:`BusContract` with a ``make_bus`` fixture returning a factory of buses
that share one medium (one database, one process): a second bus from the same factory is
what another agent process would open. ``crosses_processes`` says whether ``notify``
reaches the other buses. Waits are generous deadlines that only fail when a message is
truly lost; no test asserts how long delivery took.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from orchid.bus.base import EventBus

DEADLINE_S = 20.0
MakeBus = Callable[[], EventBus]


def collect(bus: EventBus, wanted: str, deadline_s: float = DEADLINE_S) -> set[str]:
    """Every topic the bus delivers until ``wanted`` comes (or the deadline passes)."""
    seen: set[str] = set()
    deadline = time.monotonic() + deadline_s
    while wanted not in seen and time.monotonic() < deadline:
        seen |= bus.wait(0.2)
    return seen


class BusContract:
    crosses_processes = False

    def test_is_an_event_bus(self, make_bus: MakeBus) -> None:
        assert isinstance(make_bus(), EventBus)

    def test_a_notification_wakes_this_process(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        bus.notify("jobs")
        assert "jobs" in collect(bus, "jobs")

    def test_waiting_without_notifications_times_out_empty(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        collect(bus, "never", deadline_s=0.3)  # drains what connecting delivered
        assert bus.wait(0.05) == set()

    def test_duplicates_are_merged(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        collect(bus, "never", deadline_s=0.3)
        for topic in ("jobs", "ended", "jobs", "jobs"):
            bus.notify(topic)
        assert bus.wait(DEADLINE_S) >= {"jobs", "ended"}
        assert "jobs" not in bus.wait(0.05)

    def test_wake_reaches_this_process(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        bus.wake("updates")
        assert "updates" in collect(bus, "updates")

    def test_a_sleeping_waiter_is_woken_from_another_thread(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        collect(bus, "never", deadline_s=0.3)
        got: list[set[str]] = []
        waiter = threading.Thread(target=lambda: got.append(bus.wait(DEADLINE_S)))
        waiter.start()
        time.sleep(0.05)
        bus.notify("works")
        waiter.join(DEADLINE_S + 5)
        assert got and "works" in got[0] | collect(bus, "works", 1.0)

    def test_close_stops_it(self, make_bus: MakeBus) -> None:
        bus = make_bus()
        bus.close()
        bus.notify("dropped")  # after close: no error, nothing happens
        bus.wait(0.01)

    def test_other_processes(self, make_bus: MakeBus) -> None:
        """``notify`` reaches the other buses (if the bus crosses processes); ``wake`` never."""
        one, two = make_bus(), make_bus()
        one.wake("local-only")
        one.notify("marker")
        if not self.crosses_processes:
            assert "marker" not in collect(two, "marker", deadline_s=0.3)
            return
        seen = collect(two, "marker")
        assert "marker" in seen
        assert "local-only" not in seen | two.wait(0.2)

    def test_a_bus_does_not_hear_its_own_echo(self, make_bus: MakeBus) -> None:
        if not self.crosses_processes:
            pytest.skip("nothing to echo")
        one, two = make_bus(), make_bus()
        collect(one, "never", deadline_s=0.3)
        one.notify("mine")
        assert "mine" in one.wait(DEADLINE_S)
        two.notify("theirs")  # sent after ours, so it arrives after our echo would
        assert "mine" not in collect(one, "theirs")
