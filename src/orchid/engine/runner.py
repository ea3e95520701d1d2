"""Runs agents in one loop: round-robin while there is work, asleep on the bus when idle.

One loop in one thread needs no locks and never makes SQLite writers queue
behind each other; more throughput comes from more processes (``orchid agents``
on PostgreSQL), which coordinate through leases, not through this loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from orchid.bus.base import EventBus
from orchid.bus.memory import MemoryBus
from orchid.engine.agent import Agent, AgentEnv
from orchid.engine.carrier import Carrier
from orchid.engine.clerk import Clerk
from orchid.engine.templates import TemplateCache
from orchid.engine.transformer import Transformer
from orchid.engine.trigger import Trigger
from orchid.executors.base import Executor
from orchid.settings import Settings
from orchid.store.db import Database

log = logging.getLogger(__name__)


class Runner:
    def __init__(self, agents: Sequence[Agent], bus: EventBus, poll_interval: float = 1.0) -> None:
        self.agents = list(agents)
        self.bus = bus
        self.poll_interval = poll_interval
        self.stopping = threading.Event()

    def run_once(self) -> int:
        """One round: each agent once. Returns how much they did together."""
        return sum(agent.run_once() for agent in self.agents)

    def run(
        self,
        until: Callable[[], bool] | None = None,
        *,
        idle_exit: float | None = None,
        check_every: float = 0.25,
    ) -> None:
        """Loop until ``stop()``, until ``until()`` holds, or (burst) idle for ``idle_exit`` s."""
        idle_since = time.monotonic()
        next_check = 0.0
        while not self.stopping.is_set():
            did = self.run_once()
            now = time.monotonic()
            if until is not None and (now >= next_check or not did):
                next_check = now + check_every
                if until():
                    return
            if did:
                idle_since = now
                continue
            if idle_exit is not None and now - idle_since >= idle_exit:
                return
            self.bus.wait(min(self.poll_interval, check_every) if until else self.poll_interval)

    def stop(self) -> None:
        self.stopping.set()
        self.bus.notify("stop")


def make_executor(settings: Settings, bus: EventBus) -> Executor:
    wake = lambda: bus.notify("ended")  # noqa: E731
    if settings.executor == "null":
        from orchid.executors.null import NullExecutor

        return NullExecutor(wake=wake)
    from orchid.executors.local import LocalExecutor

    return LocalExecutor(workers=settings.workers, log_dir=settings.log_dir, wake=wake)


def make_runner(
    settings: Settings,
    db: Database,
    executor: Executor | None = None,
    bus: EventBus | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[Runner, Executor]:
    """All four agents in one loop, sharing one bus and one template cache."""
    bus = bus or MemoryBus()
    executor = executor or make_executor(settings, bus)
    env = AgentEnv(
        db=db,
        bus=bus,
        clock=clock,
        templates=TemplateCache(),
        lease=settings.lease_seconds,
        batch=settings.batch,
    )
    agents: list[Agent] = [Clerk(env), Transformer(env), Carrier(env, executor), Trigger(env)]
    return Runner(agents, bus, settings.poll_interval), executor
