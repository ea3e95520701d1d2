"""Orchid's Prometheus metrics, in one registry per process.

- gauges read from the database at each scrape: workflows, works and jobs by status;
- the agents' own figures (through :class:`orchid.engine.metrics.EngineMetrics`): loop and
  claim durations, release latency;
- every SQL statement's duration (SQLAlchemy cursor events), the wake-up lag of the event
  bus and the executor's queue depth.

``orchid up`` and ``orchid server`` serve them at ``/metrics``; ``orchid agents
--metrics-port N`` on a port of its own.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.engine import Engine

from orchid.bus.base import EventBus
from orchid.store import monitor, quotas
from orchid.store.db import Database

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _BatchHistogram(Collector):
    """A histogram fed many values at once under one lock: the trigger reports each batch's
    release latencies (hundreds of values) at a cost of well under a microsecond each."""

    def __init__(self, name: str, documentation: str, bounds: Sequence[float]) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = list(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: Sequence[float]) -> None:
        where = bisect.bisect_left
        bounds = self.bounds
        with self._lock:
            counts = self.counts
            for v in values:
                counts[where(bounds, v)] += 1
            self.sum += sum(values)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = list(self.counts), self.sum
        buckets, running = [], 0
        for bound, n in zip([*self.bounds, float("inf")], counts, strict=True):
            running += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)


class _DatabaseGauges(Collector):
    """Workflows, works and jobs by status, counted when Prometheus scrapes (index scans)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        t0 = time.perf_counter()
        with self.db.engine.connect() as conn:
            totals = monitor.totals(conn)
            used = quotas.usage(conn, time.time())
        for kind, counts in totals.items():
            family = GaugeMetricFamily(
                f"orchid_{kind}",
                f"{kind.capitalize()} in the database by status",
                labels=["status"],
            )
            for status, n in sorted(counts.items()):
                family.add_metric([status], n)
            yield family
        if used:
            labels = ["kind", "subject", "executor", "quota"]
            limit = GaugeMetricFamily(
                "orchid_quota_limit", "Each limit (orchid quota) and weight", labels=labels
            )
            usage = GaugeMetricFamily(
                "orchid_quota_used",
                "What each limit's subject uses now (weights: the decayed usage, in slots)",
                labels=labels,
            )
            for u in used:
                q = u.quota
                key = [q.kind, q.subject, q.executor or "*", q.quota]
                limit.add_metric(key, q.value)
                usage.add_metric(key, u.used)
            yield limit
            yield usage
        yield GaugeMetricFamily(
            "orchid_metrics_scrape_query_seconds",
            "Time the status counts of this scrape took",
            value=time.perf_counter() - t0,
        )


class Metrics:
    """The registry and every metric; implements the engine's ``EngineMetrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.agent_loop = Histogram(
            "orchid_agent_loop_seconds",
            "Duration of one round of an agent",
            ["agent"],
            buckets=FAST,
            registry=r,
        )
        self.claim_time = Histogram(
            "orchid_claim_seconds",
            "Duration of an agent's claim statement (trigger: the propagation batch)",
            ["agent"],
            buckets=FAST,
            registry=r,
        )
        self.claimed = Counter(
            "orchid_claimed_rows", "Rows claimed by each agent", ["agent"], registry=r
        )
        self.release = _BatchHistogram(
            "orchid_release_latency_seconds",
            "From a job's success to the release of its children (the trigger's propagation)",
            LATENCY,
        )
        r.register(self.release)
        self.db_query = Histogram(
            "orchid_db_query_seconds",
            "Duration of SQL statements by kind",
            ["statement"],
            buckets=FAST,
            registry=r,
        )
        self.bus_lag = Histogram(
            "orchid_event_bus_lag_seconds",
            "From a notification to the wake-up of the sleeping agent loop",
            buckets=FAST,
            registry=r,
        )
        self.queue_depth = Gauge(
            "orchid_executor_queue_depth",
            "Jobs handed to the executor that have not ended yet",
            registry=r,
        )

    # --- EngineMetrics ---------------------------------------------------------------------

    def agent_round(self, agent: str, seconds: float) -> None:
        self.agent_loop.labels(agent).observe(seconds)

    def claim(self, agent: str, seconds: float, rows: int) -> None:
        self.claim_time.labels(agent).observe(seconds)
        if rows:
            self.claimed.labels(agent).inc(rows)

    def released(self, now: float, ended_at: Sequence[float]) -> None:
        if ended_at:
            self.release.observe_many([max(now - t, 0.0) for t in ended_at])

    # --- wiring ----------------------------------------------------------------------------

    def watch_database(self, db: Database) -> None:
        """Count statuses at each scrape, and time every statement ``db`` runs."""
        self.registry.register(_DatabaseGauges(db))
        self.instrument(db.engine)

    def instrument(self, engine: Engine) -> None:
        histogram = self.db_query

        @event.listens_for(engine, "before_cursor_execute")
        def _start(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            conn.info.setdefault("orchid_t0", []).append(time.perf_counter())

        @event.listens_for(engine, "after_cursor_execute")
        def _end(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            starts = conn.info.get("orchid_t0")
            if starts:
                verb = statement.lstrip()[:6].lower()
                kind = verb if verb in ("select", "insert", "update", "delete") else "other"
                histogram.labels(kind).observe(time.perf_counter() - starts.pop())

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def watch_agents(self, agents: Sequence[object]) -> None:
        """The executor queue depth of the carrier among ``agents`` (a runner's)."""
        carriers = [a for a in agents if hasattr(a, "in_flight")]
        self.watch_queue(lambda: sum(int(getattr(c, "in_flight", 0)) for c in carriers))

    def wrap_bus(self, bus: EventBus) -> EventBus:
        return TimedBus(bus, self.bus_lag.observe)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class TimedBus:
    """An event bus that measures how long a sleeping agent loop takes to wake when notified.

    Only notifications made in this process while the loop sleeps are timed: one made while
    it works is picked up by its next round anyway.
    """

    def __init__(self, bus: EventBus, observe: Callable[[float], None]) -> None:
        self._bus = bus
        self._observe = observe
        self._first: float | None = None
        self._sleeping = False

    def notify(self, topic: str) -> None:
        self._mark()
        self._bus.notify(topic)

    def wake(self, topic: str) -> None:
        self._mark()
        self._bus.wake(topic)

    def _mark(self) -> None:
        if self._sleeping and self._first is None:
            self._first = time.perf_counter()

    def close(self) -> None:
        self._bus.close()

    def wait(self, timeout: float) -> set[str]:
        self._first = None
        self._sleeping = True
        try:
            woken = self._bus.wait(timeout)
        finally:
            self._sleeping = False
        first = self._first
        if woken and first is not None:
            self._observe(time.perf_counter() - first)
        return woken
