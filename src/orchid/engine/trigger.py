"""The trigger: passes each job's end on to its children (release or skip) and its work."""

from __future__ import annotations

import logging
import time

from orchid.core.states import work_outcome
from orchid.engine.agent import JOBS, WORKFLOWS, AgentEnv, agent_id
from orchid.store import events, feeds, filejobs, jobs, studies, workflows, works

log = logging.getLogger(__name__)


class Trigger:
    name = "trigger"

    def __init__(self, env: AgentEnv, owner: str | None = None) -> None:
        self.env = env
        self.owner = owner or agent_id("trigger")
        self._files_idle_until = 0.0

    def run_once(self) -> int:
        return self._propagate() + self._files()

    def _files(self) -> int:
        """The data carousel: jobs for files that reached disk, files whose job ended.

        While no collection is followed, it looks again only every half second."""
        env = self.env
        now = env.clock()
        if now < self._files_idle_until:
            return 0
        with env.db.begin() as conn:
            if not feeds.any_open(conn):
                self._files_idle_until = now + 0.5
                return 0
            ended = filejobs.pass_on(conn, now, env.batch * 4)
            made = filejobs.release(conn, now, env.batch * 4)
        if made:
            env.bus.notify(JOBS)
        return ended + made

    def _propagate(self) -> int:
        env = self.env
        with env.db.begin() as conn:
            now = env.clock()
            t0 = time.perf_counter()
            p = jobs.propagate(conn, now, env.batch, ended=env.job_events)
            env.metrics.claim(self.name, time.perf_counter() - t0, p.jobs)
            if not p.jobs:
                return 0
            env.metrics.released(now, p.ended_at)
            for wf, ended in p.ended.items():  # one notification per workflow and batch
                events.emit(conn, wf, "jobs.ended", {"jobs": [list(e) for e in ended]}, now)
            finished = works.add_remaining(conn, {w: -n for w, n in p.remaining.items()})
            studies.wake_works(conn, p.remaining)  # trials of hpo works ended
            owners = works.workflow_of(conn, finished) if finished else {}
            for work_id in finished:
                status = work_outcome(works.counts(conn, work_id))
                if works.finish(conn, work_id, status, "", now):
                    events.emit(conn, owners[work_id], f"work.{status}", {"work_id": work_id}, now)
                    log.info("workflow %s work %s %s", owners[work_id], work_id, status)
            workflows.wake(conn, owners.values())
        if p.released:
            env.bus.notify(JOBS)
        if finished:
            env.bus.notify(WORKFLOWS)
        return p.jobs
