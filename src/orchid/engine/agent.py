"""What every agent is handed: the database, a clock, the bus, compiled templates."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from orchid.bus.base import EventBus
from orchid.core.limits import DEFAULT as DEFAULT_LIMITS
from orchid.core.limits import Limits
from orchid.datamgr.base import DataManager
from orchid.datamgr.registry import Access
from orchid.engine.metrics import NO_METRICS, EngineMetrics
from orchid.engine.templates import TemplateCache
from orchid.store.db import Database

Clock = Callable[[], float]

# bus topics: what changed, so which agent step has something to do
WORKFLOWS = "workflows"  # a workflow to look at (commands, works that ended): the clerk
WORKS = "works"  # works made ready: the transformer
JOBS = "jobs"  # jobs made ready: the carrier submits
ENDED = "ended"  # jobs reached a final state: the trigger passes it on
CANCEL = "cancel"  # running jobs to stop: the carrier
UPDATES = "updates"  # this process's executor has updates (local only): the carrier collects
FILES = "files"  # files reached disk (the data carousel): the trigger makes their jobs
STUDIES = "studies"  # trials ended or a study started: the HPO agent looks at its studies
TICK = "tick"  # time passed: lease renewals, lost jobs (sent with every poll)

# finishing work before new work: results, then their consequences, then new jobs and works
PRIORITY = (UPDATES, ENDED, CANCEL, WORKFLOWS, STUDIES, FILES, JOBS, WORKS, TICK)


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
    share_decay: float = 300.0  # fair share: the time constant of users' decayed usage
    data_managers: Mapping[str, DataManager] = field(default_factory=dict)  # by name
    # who may use each data manager (datamgr/registry.py); one not named here: everyone
    data_access: Mapping[str, Access] = field(default_factory=dict)
    job_events: bool = False  # emit `jobs.ended` events (the conductor can notify them)
    metrics: EngineMetrics = NO_METRICS
    limits: Limits = DEFAULT_LIMITS  # size limits (results are checked as they come in)


Step = Callable[[], int]


class Agent(Protocol):
    """A reconciler. ``run_once`` claims a batch, acts, and returns how much it did (0: idle).

    An agent may also have ``steps() -> Mapping[topic, step]``: the parts of ``run_once``
    that a topic calls for, so the runner runs only what changed. One without it runs in
    every round of the loop, on any topic.
    """

    name: str

    def run_once(self) -> int: ...
