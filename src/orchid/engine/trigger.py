"""The trigger: passes each job's end on to its children (release or skip) and its work."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy.engine import Connection

from orchid.core.states import work_outcome
from orchid.engine.agent import ENDED, JOBS, WORKFLOWS, AgentEnv, Step, agent_id
from orchid.store import events, jobs, workflows, works

log = logging.getLogger(__name__)


class Trigger:
    name = "trigger"

    def __init__(self, env: AgentEnv, owner: str | None = None) -> None:
        self.env = env
        self.owner = owner or agent_id("trigger")

    def steps(self) -> Mapping[str, Step]:
        return {ENDED: self.run_once}

    def run_once(self) -> int:
        env = self.env
        with env.db.begin() as conn:
            now = env.clock()
            p = jobs.propagate(conn, now, env.batch, env.clock)
            if not p.jobs:
                return 0
            finished = settle(conn, p, now)
        announce(env, p, finished)
        return p.jobs


def settle(conn: Connection, p: jobs.Propagation, now: float) -> list[int]:
    """After jobs were passed on: count them off their works, end the works that have no
    job left, wake their workflows' clerk. Returns the works that ended."""
    finished = works.add_remaining(conn, {w: -n for w, n in p.remaining.items()})
    owners = works.workflow_of(conn, finished) if finished else {}
    for work_id in finished:
        status = work_outcome(works.counts(conn, work_id))
        if works.finish(conn, work_id, status, "", now):
            events.emit(conn, owners[work_id], f"work.{status}", {"work_id": work_id}, now)
            log.info("workflow %s work %s %s", owners[work_id], work_id, status)
    workflows.wake(conn, owners.values())
    return finished


def announce(env: AgentEnv, p: jobs.Propagation, finished: list[int]) -> None:
    """Tell the agents what passing jobs on did (after the commit)."""
    if p.released:
        env.bus.notify(JOBS)
    if p.skipped:
        env.bus.notify(ENDED)
    if finished:
        env.bus.notify(WORKFLOWS)
