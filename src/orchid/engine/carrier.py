"""The carrier: submits ready jobs to an executor and records what the executor reports.

One carrier serves one executor. With several executors (named in the settings file and
chosen per work), each has its carrier, claiming only the jobs routed to it
(:class:`~orchid.store.routes.Route`). When the executor's jobs outlive their agent
(``durable``: Dask, PanDA, HTCondor), the jobs of a carrier that died are adopted with
their attempt unchanged, so the executor re-attaches to them instead of running them again.

Successes are passed on (their children released) in the transaction that records them;
the trigger handles every other end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from orchid.core.retry import RetryPolicy
from orchid.engine.agent import CANCEL, ENDED, JOBS, TICK, UPDATES, AgentEnv, Step, agent_id
from orchid.engine.jobspecs import JobSpecs, capped
from orchid.engine.trigger import announce, settle
from orchid.executors.base import Executor, JobSpec, JobUpdate, Planning, WorkPlan
from orchid.store import dispatch, routes

log = logging.getLogger(__name__)


class Carrier:
    name = "carrier"

    def __init__(
        self,
        env: AgentEnv,
        executor: Executor,
        owner: str | None = None,
        route: routes.Route | None = None,
        *,
        pass_on: bool = True,
    ) -> None:
        self.env = env
        self.executor = executor
        self.owner = owner or agent_id("carrier")
        self.route = route
        self._durable = executor.durable
        # release the children of jobs that succeeded in the transaction that records them,
        # rather than leaving it to the trigger (which still handles every other end)
        self.pass_on = pass_on
        self._policies: dict[int, RetryPolicy] = {}  # job id → its retry policy, in flight here
        self._unrecorded: list[JobUpdate] = []  # taken from the executor, not yet written
        self._jobspecs = JobSpecs(env.templates, env.clock)  # what executors are handed
        self._next_renewal = 0.0
        # an executor that makes each work's jobs up front (PanDA): the works it was told
        # about and not yet told ended, and the plans still to hand it
        self._planning = executor if isinstance(executor, Planning) else None
        self._planned: set[int] = set()
        self._plans_due: list[WorkPlan] = []

    @property
    def in_flight(self) -> int:
        """Jobs handed to the executor and not ended yet (its queue, as the carrier sees it)."""
        return len(self._policies)

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
        updates = [capped(u, env.limits) for u in updates]
        ended: list[int] = []
        # what the executor handed over is kept until it is written: a transaction that
        # fails (a deadlock, a lost connection) is tried again with the same updates
        self._unrecorded = updates
        with env.db.begin() as conn:
            now = env.clock()
            done = dispatch.record(
                conn,
                updates,
                self._policies,
                now,
                pass_on=self.pass_on,
                clock=env.clock,
                ended=env.job_events,
            )
            if done.passed.jobs:
                ended = settle(conn, done.passed, now, env)
            # the slots of a slot-bound executor that freed take their next jobs in the
            # same transaction (a chain's next job is on its way one commit after its
            # parent's end); no more than freed, so what else is ready stays for every
            # agent's submit step. An executor with room to spare (null) claims in big
            # rounds of its own: a claim here would only lengthen this transaction.
            freed = done.finished + done.retried
            bound = freed and self.executor.capacity() < env.batch
            specs = self._claim(conn, freed) if bound else []
        self._unrecorded = []
        again = {s.job_id for s in specs}  # retried at once: claimed in that transaction
        for u in updates:
            if u.state != "running" and u.job_id not in again:
                self._policies.pop(u.job_id, None)
        announce(env, done.passed, ended)
        if done.passed.deferred:
            log.warning(
                "%d jobs recorded, not passed on: another session (a stalled agent?) holds "
                "their workflow's works past lock_timeout; the trigger passes them on later",
                len(done.passed.deferred),
            )
        if done.finished > done.passed.jobs:  # ends the trigger passes on (failures)
            env.bus.notify(ENDED)
        if done.finished or done.retried:
            env.bus.wake(JOBS)  # their slots are free again
        if done.retried:
            env.bus.notify(JOBS)
        if specs:
            self._hand_over(specs)
        return len(updates)

    def cancel(self) -> int:
        """Stop this carrier's jobs whose cancellation was asked (an abort)."""
        env = self.env
        with env.db.begin() as conn:
            wanted = dispatch.to_cancel(conn, self.owner)
            if not wanted:
                return 0
            self.executor.cancel([JobSpec.make_key(wf, jid, att) for jid, att, wf in wanted])
            dispatch.mark_cancelled(conn, [jid for jid, _, _ in wanted], env.clock())
        env.bus.notify(ENDED)
        return len(wanted)

    def submit(self) -> int:
        """Claim ready jobs, as many as the executor takes now, and hand them over."""
        if self.executor.capacity() <= 0:  # no write transaction for nothing
            return 0
        with self.env.db.begin() as conn:
            specs = self._claim(conn)
        if specs:
            self._hand_over(specs)
        return len(specs)

    def _claim(self, conn: Connection, most: int | None = None) -> list[JobSpec]:
        """Claim as many ready jobs as the executor takes now (no more than ``most``);
        what it is to be handed."""
        room = min(self.executor.capacity(), self.env.batch, most or self.env.batch)
        if room <= 0:
            return []
        env = self.env
        t0 = time.perf_counter()
        rows = dispatch.claim_ready(
            conn,
            self.owner,
            env.clock(),
            env.lease,
            room,
            self.route,
            self.executor.name,
            decay=env.share_decay,
        )
        env.metrics.claim(self.name, time.perf_counter() - t0, len(rows))
        return self._specs(conn, rows) if rows else []

    def _hand_over(self, specs: list[JobSpec]) -> None:
        """Give the executor jobs claimed in a transaction that committed: if this process
        dies now, their lease runs out and they run again."""
        env = self.env
        try:
            self._hand_plans()
            self.executor.submit(specs)
        except Exception:
            log.exception(
                "%s refused %d jobs; they are ready again", self.executor.name, len(specs)
            )
            with env.db.begin() as conn:
                dispatch.unsubmit(conn, [s.job_id for s in specs], self.owner, env.clock())
            raise
        log.debug("submitted %d jobs to %s", len(specs), self.executor.name)
        env.bus.wake(UPDATES)  # an executor that finishes jobs at once may not call back

    def _specs(self, conn: Connection, rows: Sequence[Any], adopted: bool = False) -> list[JobSpec]:
        """What the executor is handed for claimed (or adopted) job rows."""
        specs = self._jobspecs.make(conn, rows, adopted)
        policies, works = self._policies, self._jobspecs
        if self._planning is not None:
            self._plan(conn, {r.work_id: r.workflow_id for r in rows})
        for r in rows:
            policies[r.id] = works.work(conn, r.work_id, r.workflow_id).retry
        return specs

    def _plan(self, conn: Connection, works: Mapping[int, int]) -> None:
        """The plans of works (id → workflow id) whose jobs this carrier hands over for the
        first time."""
        new = {w: wf for w, wf in works.items() if w not in self._planned}
        if not new:
            return
        for work_id, jobs in dispatch.work_jobs(conn, set(new)).items():
            info = self._jobspecs.work(conn, work_id, new[work_id])
            self._plans_due.append(
                WorkPlan(
                    info.workflow_id,
                    work_id,
                    info.name,
                    info.payload.kind,
                    info.resources,
                    tuple(jobs),
                )
            )
            self._planned.add(work_id)

    def _hand_plans(self) -> None:
        """Tell a planning executor about the works of the jobs it is about to get."""
        if self._planning is None or not self._plans_due:
            return
        due = self._plans_due
        try:
            self._planning.plan(due)
        except Exception:
            self._planned -= {p.work_id for p in due}  # planned again with their next jobs
            self._plans_due = []
            raise
        self._plans_due = []

    def _tell_ended(self) -> None:
        """Tell a planning executor which of the works it was told about have ended."""
        if self._planning is None or not self._planned:
            return
        with self.env.db.begin() as conn:
            ended = dispatch.ended_works(conn, self._planned)
        if ended:
            self._planning.works_ended(ended)
            self._planned -= set(ended)

    def _adopt(self, now: float) -> int:
        """Take over the jobs of a dead carrier of this executor, attempts unchanged."""
        env = self.env
        with env.db.begin() as conn:
            rows = dispatch.adopt_lost(conn, self.owner, now, env.lease, self.route, env.batch)
            if not rows:
                return 0
            specs = self._specs(conn, rows, adopted=True)
        log.warning("adopting %d jobs of a carrier that stopped", len(specs))
        self._hand_plans()
        self.executor.submit(specs)  # the executor finds them by key; a failure: next round
        return len(specs)

    def close(self) -> None:
        """Hand the jobs in flight here back, for another agent to run (or, on an executor
        whose jobs outlive their agent, to adopt) at once rather than when their leases run
        out. ``Runner.close`` calls it once the executors are closed."""
        env = self.env
        try:
            with env.db.begin() as conn:
                n = dispatch.give_back(conn, self.owner, env.clock(), keep_attempt=self._durable)
        except Exception:  # the database is away: the leases run out as after a crash
            log.warning("could not give back the jobs in flight here", exc_info=True)
            return
        self._policies.clear()
        if n:
            log.info("gave back %d jobs in flight to %s", n, self.executor.name)

    def housekeeping(self) -> int:
        """Renew the leases of the jobs in flight here; run again those whose agent died."""
        env = self.env
        now = env.clock()
        if now < self._next_renewal:
            return 0
        self._next_renewal = now + env.lease / 3
        with env.db.begin() as conn:
            dispatch.renew(conn, self.owner, now, env.lease)
        adopted = self._adopt(now) if self._durable else 0
        self._tell_ended()
        with env.db.begin() as conn:
            lost = dispatch.reclaim_lost(conn, now, self.route)
        if lost:
            log.warning("%d jobs had lost their agent; they are ready to run again", lost)
            env.bus.notify(JOBS)
        return lost + adopted
