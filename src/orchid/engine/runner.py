"""Runs agents in one loop: round-robin while there is work, asleep on the bus when idle.

One loop in one thread needs no locks and never makes SQLite writers queue
behind each other; more throughput comes from more processes (``orchid agents``
on PostgreSQL), which coordinate through leases, not through this loop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from orchid.bus.base import EventBus
from orchid.bus.memory import MemoryBus
from orchid.datamgr import registry
from orchid.datamgr.base import DataManager
from orchid.engine.agent import Agent, AgentEnv, agent_id
from orchid.engine.carrier import Carrier
from orchid.engine.clerk import Clerk
from orchid.engine.hpo import Optimizer
from orchid.engine.metrics import NO_METRICS, EngineMetrics
from orchid.engine.templates import TemplateCache
from orchid.engine.transformer import Transformer
from orchid.engine.transporter import Transporter
from orchid.engine.trigger import Trigger
from orchid.executors.base import Executor
from orchid.settings import Settings
from orchid.store import agents as agents_store
from orchid.store.db import Database
from orchid.store.routes import Route

log = logging.getLogger(__name__)


HEARTBEAT_S = 10.0
MAX_FAILURES = 5


class Runner:
    def __init__(
        self,
        agents: Sequence[Agent],
        bus: EventBus,
        poll_interval: float = 1.0,
        *,
        db: Database | None = None,
        clock: Callable[[], float] = time.time,
        metrics: EngineMetrics = NO_METRICS,
    ) -> None:
        self.agents = list(agents)
        self.metrics = metrics
        self.bus = bus
        self.poll_interval = poll_interval
        self.stopping = threading.Event()
        self.db = db
        self.clock = clock
        self.roles = list(dict.fromkeys(a.name for a in self.agents))  # a carrier per executor
        self.name = agent_id("+".join(self.roles))
        self._next_beat = 0.0
        self._failures: dict[str, int] = {}
        self.executors: list[Executor] = []  # closed with the runner (see make_runner)

    def run_once(self) -> int:
        """One round: each agent once. Returns how much they did together.

        An agent that raises (a lost database connection, a deadlock) is logged and
        tried again next round; its transaction was rolled back, so nothing is half
        written. After ``MAX_FAILURES`` failures in a row the error propagates.
        """
        self._heartbeat()
        done = 0
        for agent in self.agents:
            try:
                t0 = time.perf_counter()
                done += agent.run_once()
                self.metrics.agent_round(agent.name, time.perf_counter() - t0)
                self._failures[agent.name] = 0
            except Exception:
                self._failures[agent.name] = n = self._failures.get(agent.name, 0) + 1
                if n >= MAX_FAILURES:
                    raise
                log.exception("%s failed (%d in a row); retrying", agent.name, n)
                time.sleep(min(0.05 * 2**n, 2.0))
        return done

    def _heartbeat(self) -> None:
        """Every 10 s, tell the database this process is alive (health checks read it)."""
        now = self.clock()
        if self.db is None or now < self._next_beat:
            return
        self._next_beat = now + HEARTBEAT_S
        roles = ",".join(self.roles)
        with self.db.begin() as conn:
            agents_store.heartbeat(
                conn,
                name=self.name,
                roles=roles,
                host=socket.gethostname(),
                pid=os.getpid(),
                now=now,
            )

    def close(self) -> None:
        """Close the executors it owns; say goodbye: the process is no live agent any more."""
        for executor in self.executors:
            try:
                executor.close()
            except Exception:
                log.exception("closing executor %s failed", executor.name)
        for agent in self.agents:
            closing = getattr(agent, "close", None)
            if closing is not None:
                closing()
        if self.db is not None:
            with self.db.begin() as conn:
                agents_store.forget(conn, self.name)

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


def make_executor(settings: Settings, bus: EventBus, name: str | None = None) -> Executor:
    """The executor ``name`` (default: the settings' default executor), connected."""
    from orchid.executors import registry

    wake = lambda: bus.notify("ended")  # noqa: E731
    return registry.make(settings.executor_config(name or settings.executor), settings, wake)


def make_runner(
    settings: Settings,
    db: Database,
    executor: Executor | None = None,
    bus: EventBus | None = None,
    clock: Callable[[], float] = time.time,
    data_managers: Mapping[str, DataManager] | None = None,
    metrics: EngineMetrics = NO_METRICS,
) -> tuple[Runner, Executor]:
    """Every agent in one loop, sharing one bus and one template cache.

    Returns the runner and the default executor. Without an ``executor`` given, there is a
    carrier for the default executor and one for each executor of the settings file, each
    claiming the jobs of the works routed to it; ``runner.close()`` closes the extra ones.
    ``data_managers`` by name (default: those of ``settings.data_managers``).
    """
    bus = bus or MemoryBus()
    if data_managers is None:
        data_managers = registry.load(settings.data_managers)
    env = AgentEnv(
        db=db,
        bus=bus,
        clock=clock,
        templates=TemplateCache(),
        lease=settings.lease_seconds,
        batch=settings.batch,
        data_managers=data_managers,
        job_events=settings.job_events,
        metrics=metrics,
    )
    carriers: list[Agent] = []
    extra: list[Executor] = []
    if executor is None:
        executor = make_executor(settings, bus)
        others = sorted(set(settings.executors) - {settings.executor})
        try:
            for name in others:
                extra.append(make_executor(settings, bus, name))
        except BaseException:
            for ex in [executor, *extra]:
                ex.close()
            raise
        if others:
            carriers.append(Carrier(env, executor, route=Route(settings.executor, default=True)))
            carriers += [
                Carrier(env, ex, route=Route(name, default=False))
                for name, ex in zip(others, extra, strict=True)
            ]
    if not carriers:
        carriers.append(Carrier(env, executor))
    agents: list[Agent] = [
        Clerk(env),
        Transformer(env),
        *carriers,
        Trigger(env),
        Optimizer(env, settings.log_dir),
        Transporter(env, data_managers),
    ]
    if settings.notify:
        from orchid.engine.conductor import Conductor, subscriptions_from

        agents.append(Conductor(env, subscriptions_from(settings)))
    runner = Runner(agents, bus, settings.poll_interval, db=db, clock=clock, metrics=metrics)
    runner.executors = extra
    return runner, executor
