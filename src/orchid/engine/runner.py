"""Runs agents in one loop: event-driven, with periodic polls as the safety net.

The bus delivers topics (what changed); the coordinator merges them and hands them out in
rounds, most urgent first (finishing work before new work); each topic runs the agent
steps that handle it, and a step that did something runs again next round, since more
may be waiting. Every ``poll_interval`` every step runs once whatever the bus said, so a
lost notification only delays work. ``run_once`` runs each agent whole, once: the
deterministic mode of the tests.

One loop in one thread needs no locks and never makes SQLite writers queue behind each
other; more throughput comes from more processes (``orchid agents`` on PostgreSQL),
which coordinate through leases, not through this loop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from orchid.bus import make_bus
from orchid.bus.base import EventBus
from orchid.datamgr import registry
from orchid.datamgr.base import DataManager
from orchid.datamgr.registry import Access
from orchid.engine.agent import PRIORITY, TICK, UPDATES, Agent, AgentEnv, Step, agent_id
from orchid.engine.carrier import Carrier
from orchid.engine.clerk import Clerk
from orchid.engine.coordinator import EVERYTHING, Coordinator
from orchid.engine.hpo import Optimizer
from orchid.engine.metrics import NO_METRICS, EngineMetrics
from orchid.engine.templates import TemplateCache
from orchid.engine.transformer import Transformer
from orchid.engine.transporter import Transporter
from orchid.engine.trigger import Trigger
from orchid.executors.base import Executor
from orchid.settings import Settings
from orchid.store import agents as agents_store
from orchid.store import secrets
from orchid.store.db import ChangeProbe, Database, lost_connection, passing_failure
from orchid.store.routes import Route

log = logging.getLogger(__name__)


HEARTBEAT_S = 10.0
PROBE_S = 0.05  # an idle loop on SQLite looks this often for other processes' commits
GIVE_UP_S = 120.0  # an agent failing without a break this long stops the process


class ProbeGate:
    """Whether another process's commit, seen by the SQLite probe, is worth a round of
    every agent now.

    Most such commits are news to the agents (a submission, a command), but those of a
    busy server's worker desk are not: it records, passes on and leases in its own
    transaction, hundreds of times a second, and a round of every agent after each look
    (every ``PROBE_S``) took a quarter of a worker chain's step in write locks and CPU.
    So a round the probe asked for that did nothing makes the next one wait twice as
    long, up to ``longest`` (the poll interval, which bounds it anyway); a round that
    did something, or a look that saw no commit at all, makes the next one come at once.
    A submission to a quiet database still starts within ``PROBE_S``; one made while
    other processes write without pause, within the poll interval at worst.
    """

    def __init__(self, longest: float) -> None:
        self.longest = max(longest, PROBE_S)
        self.wait = 0.0  # the pause after a round that did nothing
        self.not_before = 0.0
        self.dirty = False  # a commit seen and not yet looked at by a round

    def look(self, changed: bool, now: float) -> bool:
        """The probe said ``changed``: whether to run a round of every agent now."""
        if changed:
            self.dirty = True
        elif not self.dirty:  # quiet: the next commit is news at once
            self.wait, self.not_before = 0.0, now
        if self.dirty and now >= self.not_before:
            self.dirty = False
            return True
        return False

    def ran(self, did: bool, now: float) -> None:
        """The round :meth:`look` asked for ran, and ``did`` something or not."""
        self.wait = 0.0 if did else min(max(PROBE_S, 2 * self.wait), self.longest)
        self.not_before = now + self.wait

    def polled(self) -> None:
        """A poll's round looks at everything: commits seen so far are covered."""
        self.dirty = False


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
        self._failing_since: dict[str, float] = {}
        self.default_executor: Executor | None = None  # set by make_runner
        self.executors: list[Executor] = []  # those it owns: closed with the runner
        self.coordinator = Coordinator(PRIORITY)
        self._steps: dict[str, list[tuple[Agent, Step]]] = {}
        self._every_round: list[tuple[Agent, Step]] = []
        for agent in self.agents:
            steps = getattr(agent, "steps", None)
            if steps is None:
                self._every_round.append((agent, agent.run_once))
                continue
            for topic, step in steps().items():
                self._steps.setdefault(topic, []).append((agent, step))

    @property
    def executor(self) -> Executor:
        """The default executor (that of the carrier of the works routed nowhere else)."""
        if self.default_executor is None:
            raise RuntimeError("this runner was not made by make_runner: it has no executor")
        return self.default_executor

    def run_once(self) -> int:
        """One round: each agent once, whole. Returns how much they did together.

        An agent that raises (a lost database connection, a deadlock, a lock wait that
        gave up) is logged and tried again; its transaction was rolled back, so nothing
        is half written. One that fails without a break for ``GIVE_UP_S`` seconds stops
        the loop, unless it failed only on other sessions' locks (see :meth:`_call`).
        """
        self._heartbeat()
        return sum(self._call(agent, agent.run_once) or 0 for agent in self.agents)

    def _call(self, agent: Agent, step: Step) -> int | None:
        """Run one step; how much it did, or None if it failed and is to run again.

        The one place where agents' failures are handled. A failure that passes by itself
        (:func:`~orchid.store.db.passing_failure`: a lock wait that gave up because a
        frozen or slow agent holds the lock, a deadlock, this session's transaction ended
        by the server) is one line in the log, and the step runs again next round: it
        waited already (``lock_timeout``), and the server ends a frozen session within a
        third of a lease. Any other failure (a statement timeout, a lost connection)
        backs off and counts towards ``GIVE_UP_S``.
        """
        try:
            t0 = time.perf_counter()
            done = step()
            self.metrics.agent_round(agent.name, time.perf_counter() - t0)
        except Exception as exc:
            reason = passing_failure(exc)
            if reason is not None:
                log.warning("%s: %s; trying again", agent.name, reason)
                return None
            now = time.monotonic()
            since = self._failing_since.setdefault(agent.name, now)
            if now - since >= GIVE_UP_S:
                raise
            if lost_connection(exc):  # no traceback: what happened is all there is to say
                why = (str(getattr(exc, "orig", exc)).strip().splitlines() or ["?"])[0]
                log.warning("%s: lost its database connection (%s); retrying", agent.name, why)
            else:
                log.exception("%s failed (for %.0fs); retrying", agent.name, now - since)
            time.sleep(min(0.05 + (now - since) / 10, 2.0))
            return None
        self._failing_since.pop(agent.name, None)
        return done

    def _round(self) -> int:
        """Run the steps of the pending topics once; topics whose steps did something
        are pending again."""
        did = 0
        topics = self.coordinator.round()
        for topic in topics:
            for agent, step in self._steps.get(topic, ()):
                n = self._call(agent, step)
                if n is None or n:  # failed (run it again) or did something (more waits)
                    did += n or 0
                    self.coordinator.add((topic,))
        if topics:
            for agent, step in self._every_round:
                did += self._call(agent, step) or 0
        return did

    def _heartbeat(self) -> None:
        """Every 10 s, tell the database this process is alive (health checks read it)."""
        now = self.clock()
        if self.db is None or now < self._next_beat:
            return
        self._next_beat = now + HEARTBEAT_S
        roles = ",".join(self.roles)
        try:
            with self.db.begin() as conn:
                agents_store.heartbeat(
                    conn,
                    name=self.name,
                    roles=roles,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    now=now,
                )
        except Exception:  # the database is away; the agents' own calls will tell
            log.warning("heartbeat failed; trying again soon", exc_info=True)
            self._next_beat = now + 1.0

    def close(self) -> None:
        """Close the executors it owns, then the agents' own resources (the carriers then
        hand their jobs in flight back, for other agents to take at once); say goodbye:
        the process no longer counts as a live agent. An executor given to
        :func:`make_runner` is its caller's: close it before this."""
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
            try:
                with self.db.begin() as conn:
                    agents_store.forget(conn, self.name)
            except Exception:
                log.warning("could not remove this agent from the agents table", exc_info=True)
        self.bus.close()

    def run(
        self,
        until: Callable[[], bool] | None = None,
        *,
        idle_exit: float | None = None,
        check_every: float = 0.25,
    ) -> None:
        """Loop until ``stop()``, until ``until()`` holds, or (burst) idle for ``idle_exit`` s.

        On SQLite an idle loop also looks every ``PROBE_S`` whether another process
        committed (a submission, a command): if so it runs as on a poll, so work written
        by the CLI or the server starts within milliseconds without an event bus; while
        such rounds find nothing (a server's worker desk committing without pause), they
        come less and less often, down to the poll interval (:class:`ProbeGate`).
        """
        probe = self._probe()
        try:
            self._loop(until, idle_exit, check_every, probe)
        finally:
            if probe is not None:
                probe.close()

    def _probe(self) -> ChangeProbe | None:
        try:
            return self.db.change_probe() if self.db is not None else None
        except Exception:  # the database is away: the polls still find everything
            log.warning("cannot watch the database for changes; polling only", exc_info=True)
            return None

    @staticmethod
    def _changed(probe: ChangeProbe | None) -> bool:
        if probe is None:
            return False
        try:
            return probe.changed()
        except Exception:  # the database is away: the agents' own calls will tell
            return False

    def _loop(
        self,
        until: Callable[[], bool] | None,
        idle_exit: float | None,
        check_every: float,
        probe: ChangeProbe | None,
    ) -> None:
        self.coordinator.add((EVERYTHING,))
        gate = ProbeGate(self.poll_interval)
        start = time.monotonic()
        idle_since = next_check = start
        next_poll = start + self.poll_interval
        while not self.stopping.is_set():
            now = time.monotonic()
            if self.coordinator.pending:
                timeout = 0.0
            else:
                timeout = max(0.0, next_poll - now)
                if until is not None:
                    timeout = min(timeout, max(0.0, next_check - now))
                if idle_exit is not None:
                    timeout = min(timeout, max(0.0, idle_since + idle_exit - now))
                if probe is not None:
                    timeout = min(timeout, PROBE_S)
            self.coordinator.add(self.bus.wait(timeout))
            now = time.monotonic()
            probed = False
            if probe is not None and not self.coordinator.pending:
                probed = gate.look(self._changed(probe), now)
                if probed:  # another process wrote: look at all
                    self.coordinator.add((EVERYTHING,))
            if now >= next_poll:
                next_poll = now + self.poll_interval
                self.coordinator.add((EVERYTHING, TICK))
                gate.polled()
            self._heartbeat()
            did = self._round()
            self._changed(probe)  # what this round committed is no news to this process
            now = time.monotonic()
            if probed:
                gate.ran(bool(did), now)
            if did:
                idle_since = now
            if until is not None and (now >= next_check or not self.coordinator.pending):
                next_check = now + check_every
                if until():
                    return
            quiet = not did and not self.coordinator.pending
            if idle_exit is not None and quiet and now - idle_since >= idle_exit:
                return

    def stop(self) -> None:
        self.stopping.set()
        self.bus.wake("stop")


def log_folder(settings: Settings, db: Database, now: float | None = None) -> Path:
    """Where the executors of this database write logs and result files:
    ``ORCHID_HOME/logs/<instance id>``, one folder per database, since several databases
    may share one ORCHID_HOME (logs recorded before, directly in ``logs/``, stay readable:
    the API and ``orchid logs`` serve any file below ``settings.log_dir``)."""
    with db.begin() as conn:  # a write lock at once: a deferred one cannot wait for a writer
        return settings.log_dir / secrets.instance_id(conn, time.time() if now is None else now)


def make_executor(
    settings: Settings, bus: EventBus, name: str | None = None, log_dir: Path | None = None
) -> Executor:
    """The executor ``name`` (default: the settings' default executor), connected, writing
    into ``log_dir`` (default: ``settings.log_dir``; the runner gives its database's)."""
    from orchid.executors import registry as executors

    wake = lambda: bus.wake(UPDATES)  # noqa: E731
    config = settings.executor_config(name or settings.executor)
    return executors.make(config, settings, wake, log_dir)


def make_runner(
    settings: Settings,
    db: Database,
    executor: Executor | None = None,
    bus: EventBus | None = None,
    clock: Callable[[], float] = time.time,
    data_managers: Mapping[str, DataManager] | None = None,
    metrics: EngineMetrics = NO_METRICS,
    data_access: Mapping[str, Access] | None = None,
) -> Runner:
    """Every agent in one loop, sharing one bus and one template cache.

    ``runner.executor`` is the default executor. Without an ``executor`` given, there is a
    carrier for the default executor and one for each executor of the settings file, each
    claiming the jobs of the works routed to it; the runner owns them all and
    ``runner.close()`` closes them (an ``executor`` given stays its caller's to close).
    :class:`~orchid.engine.inprocess.Engine` runs and closes a runner.
    ``data_managers`` by name (default: those of ``settings.data_managers``), and who may
    use each (``data_access``; default: as the settings say, or everyone for managers given).
    """
    bus = bus or make_bus(settings.bus, db)
    if data_managers is None:
        configured = registry.load(settings)
        data_managers = configured.managers
        data_access = configured.access if data_access is None else data_access
    env = AgentEnv(
        db=db,
        bus=bus,
        clock=clock,
        templates=TemplateCache(limits=settings.limits),
        limits=settings.limits,
        lease=settings.lease_seconds,
        batch=settings.batch,
        share_decay=settings.share_decay,
        data_managers=data_managers,
        data_access=data_access or {},
        job_events=settings.job_events,
        metrics=metrics,
    )
    carriers: list[Agent] = []
    extra: list[Executor] = []
    owned: list[Executor] = []
    log_dir = log_folder(settings, db, clock())
    if executor is None:
        executor = make_executor(settings, bus, log_dir=log_dir)
        owned.append(executor)
        others = sorted(set(settings.executors) - {settings.executor})
        try:
            for name in others:
                extra.append(make_executor(settings, bus, name, log_dir))
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
        Optimizer(env, log_dir),
        Transporter(env, data_managers),
    ]
    if settings.archive_after is not None:  # retention: [retention] archive_after
        from orchid.engine.archivist import Archivist, Policy

        agents.append(Archivist(env, Policy.from_settings(settings)))
    if settings.notify:
        from orchid.engine.conductor import Conductor, subscriptions_from

        agents.append(Conductor(env, subscriptions_from(settings)))
    runner = Runner(agents, bus, settings.poll_interval, db=db, clock=clock, metrics=metrics)
    runner.default_executor = executor
    runner.executors = owned + extra
    return runner
