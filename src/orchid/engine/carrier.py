"""The carrier: submits ready jobs to an executor and records what the executor reports."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from orchid.engine.agent import CANCEL, ENDED, JOBS, TICK, UPDATES, AgentEnv, Step, agent_id
from orchid.engine.trigger import announce, settle
from orchid.executors.base import Executor, JobSpec, JobUpdate, Payload, Resources
from orchid.store import jobs

log = logging.getLogger(__name__)
WORK_CACHE = 10_000


@dataclass(frozen=True)
class _WorkInfo:
    """What every job of one work shares on its way to the executor."""

    name: str
    payload: Payload
    resources: Resources
    retry_delay: float


class Carrier:
    name = "carrier"

    def __init__(
        self,
        env: AgentEnv,
        executor: Executor,
        owner: str | None = None,
        *,
        pass_on: bool = True,
    ) -> None:
        self.env = env
        self.executor = executor
        self.owner = owner or agent_id("carrier")
        # release the children of jobs that succeeded in the transaction that records them,
        # rather than leaving it to the trigger (which still handles every other end)
        self.pass_on = pass_on
        self._delays: dict[int, float] = {}  # job id → retry delay, for jobs in flight here
        self._unrecorded: list[JobUpdate] = []  # taken from the executor, not yet written
        self._works: dict[int, _WorkInfo] = {}  # work id → what its jobs share
        self._next_renewal = 0.0

    def run_once(self) -> int:
        return self.collect() + self.cancel() + self.submit() + self.housekeeping()

    def steps(self) -> Mapping[str, Step]:
        return {
            UPDATES: self.collect,
            CANCEL: self.cancel,
            JOBS: self.submit,
            TICK: self.housekeeping,
        }

    def collect(self) -> int:
        """Record what the executor saw since the last call."""
        updates = self._unrecorded + self.executor.poll()
        if not updates:
            return 0
        env = self.env
        ended: list[int] = []
        # what the executor handed over is kept until it is written: a transaction that
        # fails (a deadlock, a lost connection) is tried again with the same updates
        self._unrecorded = updates
        with env.db.begin() as conn:
            now = env.clock()
            done = jobs.record(
                conn, updates, self._delays, now, pass_on=self.pass_on, clock=env.clock
            )
            if done.passed.jobs:
                ended = settle(conn, done.passed, now)
        self._unrecorded = []
        for u in updates:
            if u.state != "running":
                self._delays.pop(u.job_id, None)
        announce(env, done.passed, ended)
        if done.finished > done.passed.jobs:  # ends the trigger passes on (failures)
            env.bus.notify(ENDED)
        if done.finished or done.retried:
            env.bus.wake(JOBS)  # their slots are free again
        if done.retried:
            env.bus.notify(JOBS)
        return len(updates)

    def cancel(self) -> int:
        """Stop this carrier's jobs whose cancellation was asked (an abort)."""
        env = self.env
        with env.db.begin() as conn:
            wanted = jobs.to_cancel(conn, self.owner)
            if not wanted:
                return 0
            self.executor.cancel([JobSpec.make_key(wf, jid, att) for jid, att, wf in wanted])
            jobs.mark_cancelled(conn, [jid for jid, _, _ in wanted], env.clock())
        env.bus.notify(ENDED)
        return len(wanted)

    def submit(self) -> int:
        """Claim ready jobs, as many as the executor takes now, and hand them over."""
        room = min(self.executor.capacity(), self.env.batch)
        if room <= 0:
            return 0
        env = self.env
        specs: list[JobSpec] = []
        with env.db.begin() as conn:
            rows = jobs.claim_ready(conn, self.owner, env.clock(), env.lease, room)
            if not rows:
                return 0
            missing = {r.work_id: r.workflow_id for r in rows if r.work_id not in self._works}
            if missing:
                self._learn(conn, missing)
            delays, works = self._delays, self._works
            for r in rows:
                info = works[r.work_id]
                delays[r.id] = info.retry_delay
                specs.append(
                    JobSpec(
                        f"{r.workflow_id}-{r.id}-{r.attempt}",  # JobSpec.make_key
                        r.workflow_id,
                        r.id,
                        r.attempt,
                        info.name,
                        r.name,
                        info.payload,
                        r.args,
                        info.resources,
                    )
                )
        # after the commit: if this process dies now, the lease runs out and the jobs run again
        try:
            self.executor.submit(specs)
        except Exception:
            log.exception(
                "%s refused %d jobs; they are ready again", self.executor.name, len(specs)
            )
            with env.db.begin() as conn:
                jobs.unsubmit(conn, [s.job_id for s in specs], self.owner, env.clock())
            raise
        log.debug("submitted %d jobs to %s", len(specs), self.executor.name)
        env.bus.wake(UPDATES)  # an executor that finishes jobs at once may not call back
        return len(specs)

    def _learn(self, conn: Connection, works: Mapping[int, int]) -> None:
        """Remember what the jobs of these works (id → workflow id) share."""
        if len(self._works) > WORK_CACHE:
            self._works.clear()
        for work_id, name in jobs.work_names(conn, works).items():
            compiled = self.env.templates.get(conn, works[work_id])
            self._works[work_id] = _WorkInfo(
                name, compiled.payload(name), compiled.resources(name), compiled.retry_delay(name)
            )

    def housekeeping(self) -> int:
        """Renew the leases of the jobs in flight here; run again those whose agent died."""
        env = self.env
        now = env.clock()
        if now < self._next_renewal:
            return 0
        self._next_renewal = now + env.lease / 3
        with env.db.begin() as conn:
            jobs.renew(conn, self.owner, now, env.lease)
            lost = jobs.reclaim_lost(conn, now)
        if lost:
            log.warning("%d jobs had lost their agent; they are ready to run again", lost)
            env.bus.notify(JOBS)
        return lost
