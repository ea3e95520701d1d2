"""What every agent is handed: the database, a clock, the bus, compiled templates."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from orchid.bus.base import EventBus
from orchid.datamgr.base import DataManager
from orchid.engine.metrics import NO_METRICS, EngineMetrics
from orchid.engine.templates import TemplateCache
from orchid.store.db import Database

Clock = Callable[[], float]

# bus topics
WORKFLOWS, WORKS, JOBS, ENDED = "workflows", "works", "jobs", "ended"


def agent_id(role: str) -> str:
    """A unique owner name for leases, readable in the database: role@host:pid/random.

    At most 64 characters (the owner columns): a long role (a runner of many agents,
    ``clerk+transformer+...``) is cut, the rest of the name keeps it unique."""
    return f"{role[:28]}@{socket.gethostname()[:20]}:{os.getpid()}/{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class AgentEnv:
    db: Database
    bus: EventBus
    clock: Clock
    templates: TemplateCache = field(default_factory=TemplateCache)
    lease: float = 30.0
    batch: int = 500
    data_managers: Mapping[str, DataManager] = field(default_factory=dict)  # by name
    job_events: bool = False  # emit `jobs.ended` events (the conductor can notify them)
    metrics: EngineMetrics = NO_METRICS


class Agent(Protocol):
    """A reconciler. ``run_once`` claims a batch, acts, and returns how much it did (0: idle)."""

    name: str

    def run_once(self) -> int: ...
