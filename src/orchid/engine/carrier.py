"""The carrier: submits ready jobs to an executor and records what the executor reports.

One carrier serves one executor. With several executors (named in the settings file and
chosen per work), each has its carrier, claiming only the jobs routed to it
(:class:`~orchid.store.routes.Route`). When the executor's jobs outlive their agent
(``durable``: Dask, PanDA, HTCondor), the jobs of a carrier that died are adopted with
their attempt unchanged, so the executor re-attaches to them instead of running them again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy.engine import Connection

from orchid.core import jobtoken
from orchid.engine.agent import ENDED, AgentEnv, agent_id
from orchid.executors.base import Executor, JobSpec
from orchid.store import jobs, routes, secrets

log = logging.getLogger(__name__)


class Carrier:
    name = "carrier"

    def __init__(
        self,
        env: AgentEnv,
        executor: Executor,
        owner: str | None = None,
        route: routes.Route | None = None,
    ) -> None:
        self.env = env
        self.executor = executor
        self.owner = owner or agent_id("carrier")
        self.route = route
        self._where = route.jobs_filter() if route is not None else None
        self._durable = bool(getattr(executor, "durable", False))
        self._delays: dict[int, float] = {}  # job id → retry delay, for jobs in flight here
        self._next_renewal = 0.0
        self._job_key: bytes | None = None

    @property
    def in_flight(self) -> int:
        """Jobs handed to the executor and not ended yet (its queue, as the carrier sees it)."""
        return len(self._delays)

    def run_once(self) -> int:
        return self._collect() + self._cancel() + self._submit() + self._housekeeping()

    def _collect(self) -> int:
        updates = self.executor.poll()
        if not updates:
            return 0
        env = self.env
        with env.db.begin() as conn:
            finished, retried = jobs.record_updates(conn, updates, self._delays, env.clock())
        for u in updates:
            if u.state != "running":
                self._delays.pop(u.job_id, None)
        if finished or retried:
            env.bus.notify(ENDED)
        return len(updates)

    def _cancel(self) -> int:
        env = self.env
        with env.db.begin() as conn:
            wanted = jobs.to_cancel(conn, self.owner)
            if not wanted:
                return 0
            self.executor.cancel([JobSpec.make_key(wf, jid, att) for jid, att, wf in wanted])
            jobs.mark_cancelled(conn, [jid for jid, _, _ in wanted], env.clock())
        env.bus.notify(ENDED)
        return len(wanted)

    def _submit(self) -> int:
        room = min(self.executor.capacity(), self.env.batch)
        if room <= 0:
            return 0
        env = self.env
        with env.db.begin() as conn:
            t0 = time.perf_counter()
            rows = jobs.claim_ready(conn, self.owner, env.clock(), env.lease, room, self._where)
            env.metrics.claim(self.name, time.perf_counter() - t0, len(rows))
            if not rows:
                return 0
            specs = self._specs(conn, rows)
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
        return len(specs)

    def _specs(self, conn: Connection, rows: list[Any], adopted: bool = False) -> list[JobSpec]:
        """What the executor is handed for claimed (or adopted) job rows."""
        env = self.env
        specs: list[JobSpec] = []
        names = jobs.work_names(conn, {r.work_id for r in rows})
        for r in rows:
            work = names[r.work_id]
            compiled = env.templates.get(conn, r.workflow_id, (work,))
            self._delays[r.id] = compiled.retry_delay(work)
            job_env = {}
            if compiled.template.work(work).api_token:
                job_env["ORCHID_TOKEN"] = self._token(conn, r.workflow_id, r.id, r.attempt)
            specs.append(
                JobSpec(
                    key=JobSpec.make_key(r.workflow_id, r.id, r.attempt),
                    workflow_id=r.workflow_id,
                    job_id=r.id,
                    attempt=r.attempt,
                    work_name=work,
                    job_name=r.name,
                    payload=compiled.payload(work, r.name),
                    args=r.args,
                    resources=compiled.resources(work),
                    env=job_env,
                    adopted=adopted,
                )
            )
        return specs

    def _adopt(self, now: float) -> int:
        """Take over the jobs of a dead carrier of this executor, attempts unchanged."""
        env = self.env
        with env.db.begin() as conn:
            rows = routes.adopt_lost(conn, self.owner, now, env.lease, self.route, env.batch)
            if not rows:
                return 0
            specs = self._specs(conn, rows, adopted=True)
        log.warning("adopting %d jobs of a carrier that stopped", len(specs))
        self.executor.submit(specs)  # the executor finds them by key; a failure: next round
        return len(specs)

    def _token(self, conn: Connection, workflow_id: int, job_id: int, attempt: int) -> str:
        """A job token for this attempt (see :mod:`orchid.core.jobtoken`)."""
        if self._job_key is None:
            self._job_key = secrets.key(conn, secrets.JOB_TOKEN_KEY, self.env.clock())
        return jobtoken.make(self._job_key, workflow_id, job_id, attempt)

    def _housekeeping(self) -> int:
        env = self.env
        now = env.clock()
        if now < self._next_renewal:
            return 0
        self._next_renewal = now + env.lease / 3
        with env.db.begin() as conn:
            jobs.renew(conn, self.owner, now, env.lease)
        adopted = self._adopt(now) if self._durable else 0
        with env.db.begin() as conn:
            lost = jobs.reclaim_lost(conn, now, self._where)
        if lost:
            log.warning("%d jobs had lost their agent; they are ready to run again", lost)
        return lost + adopted
