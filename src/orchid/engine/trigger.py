"""The trigger: passes each job's end on to its children (release or skip) and its work,
and (the data carousel) makes jobs of files that reached disk and passes their end on."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from sqlalchemy.engine import Connection

from orchid.core.states import work_outcome
from orchid.engine.agent import (
    ENDED,
    FILES,
    JOBS,
    STUDIES,
    TICK,
    WORKFLOWS,
    AgentEnv,
    Step,
    agent_id,
)
from orchid.store import events, feeds, filejobs, release, studies, workflows, works

log = logging.getLogger(__name__)
FILES_IDLE_S = 0.5  # while no collection is followed, look for one this often


class Trigger:
    name = "trigger"

    def __init__(self, env: AgentEnv, owner: str | None = None) -> None:
        self.env = env
        self.owner = owner or agent_id("trigger")
        self._files_idle_until = 0.0

    def steps(self) -> Mapping[str, Step]:
        return {ENDED: self.run_once, FILES: self.files, TICK: self.files}

    def run_once(self) -> int:
        return self.propagate() + self.files()

    def propagate(self) -> int:
        env = self.env
        with env.db.begin() as conn:
            now = env.clock()
            t0 = time.perf_counter()
            p = release.propagate(conn, now, env.batch, env.clock, ended=env.job_events)
            env.metrics.claim(self.name, time.perf_counter() - t0, p.jobs)
            if not p.jobs:
                if p.deferred:  # their works are held by another session: next round
                    log.info("%d ended jobs wait for their works' lock", len(p.deferred))
                return 0
            finished = settle(conn, p, now, env)
        announce(env, p, finished)
        return p.jobs

    def files(self) -> int:
        """The data carousel: jobs for files that reached disk, files whose job ended.

        While no collection is followed, it looks again only every half second."""
        env = self.env
        now = env.clock()
        if now < self._files_idle_until:
            return 0
        with env.db.begin() as conn:
            if not feeds.any_open(conn):
                self._files_idle_until = now + FILES_IDLE_S
                return 0
            ended = filejobs.pass_on(conn, now, env.batch * 4)
            made = filejobs.release(conn, now, env.batch * 4, env.limits.job_args_max_bytes)
        if made:
            env.bus.notify(JOBS)
        return ended + made


def settle(conn: Connection, p: release.Propagation, now: float, env: AgentEnv) -> list[int]:
    """After jobs were passed on: count them off their works, end the works that have no
    job left, wake their workflows' clerk and their studies, write job notifications.
    Returns the works that ended."""
    env.metrics.released(now, p.ended_at)
    return settle_works(conn, p, now)


def settle_works(conn: Connection, p: release.Propagation, now: float) -> list[int]:
    """:func:`settle` without the agents' metrics (the worker desk's reports)."""
    for wf, ended in p.ended.items():  # one notification per workflow and batch
        events.emit(conn, wf, "jobs.ended", {"jobs": [list(e) for e in ended]}, now)
    finished = works.add_remaining(conn, {w: -n for w, n in p.remaining.items()})
    p.woke_studies = studies.wake_works(conn, p.remaining)  # trials of hpo works ended
    owners = works.workflow_of(conn, finished) if finished else {}
    for work_id in finished:
        status = work_outcome(works.counts(conn, work_id))
        if works.finish(conn, work_id, status, "", now):
            events.emit(conn, owners[work_id], f"work.{status}", {"work_id": work_id}, now)
            log.info("workflow %s work %s %s", owners[work_id], work_id, status)
    workflows.wake(conn, owners.values())
    return finished


def announce(env: AgentEnv, p: release.Propagation, finished: list[int]) -> None:
    """Tell the agents what passing jobs on did (after the commit)."""
    if p.released:
        env.bus.notify(JOBS)
    if p.skipped:
        env.bus.notify(ENDED)
    if finished:
        env.bus.notify(WORKFLOWS)
    if p.woke_studies:
        env.bus.notify(STUDIES)
