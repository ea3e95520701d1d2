"""The transformer: turns a ready work into jobs (expands its map, or releases listed jobs)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection, Row

from orchid.core.jobs import expand_map
from orchid.core.states import WorkStatus, work_outcome
from orchid.engine import hpo
from orchid.engine.agent import JOBS, STUDIES, WORKFLOWS, WORKS, AgentEnv, Step, agent_id
from orchid.engine.transporter import start_fed_work
from orchid.errors import InvalidInput
from orchid.store import events, jobs, quotas, workflows, works

log = logging.getLogger(__name__)


class Transformer:
    name = "transformer"

    def __init__(self, env: AgentEnv, owner: str | None = None) -> None:
        self.env = env
        self.owner = owner or agent_id("transformer")

    def steps(self) -> Mapping[str, Step]:
        return {WORKS: self.run_once}

    def run_once(self) -> int:
        env = self.env
        done = 0
        with env.db.begin() as conn:
            t0 = time.perf_counter()
            claimed = works.claim_ready(conn, self.owner, env.clock(), env.lease, 20)
            env.metrics.claim(self.name, time.perf_counter() - t0, len(claimed))
            for row in claimed:
                self._transform(conn, row)
                done += 1
        if done:
            env.bus.notify(JOBS)
            env.bus.notify(WORKFLOWS)
            env.bus.notify(STUDIES)  # an hpo work among them has a study to start
        return done

    def _transform(self, conn: Connection, row: Row[Any]) -> None:
        now = self.env.clock()
        compiled = self.env.templates.get(conn, row.workflow_id, (row.name,))
        spec = compiled.template.work(row.name).input
        if spec is not None:  # the data carousel: jobs come as its files reach disk
            env = self.env
            start_fed_work(conn, row, compiled, spec, env.data_managers, now, env.data_access)
            return
        if compiled.template.work(row.name).hpo is not None:
            hpo.start(conn, row, now)  # its jobs come from the HPO agent, trial by trial
            return
        if row.static:
            # listed jobs were written at submission; those whose parents (in any work)
            # have all succeeded are released now, the others by the trigger later; all
            # of them take the work's bound parameters first (their own args win)
            jobs.merge_args(conn, row.id, (row.inputs or {}).get("parameters") or {})
            released = jobs.release_roots(conn, row.id, now)
            remaining = jobs.unpropagated(conn, row.id)
            n_jobs = sum(works.counts(conn, row.id).values())
            log.info(
                "workflow %s work %s: %d listed jobs, %d ready",
                row.workflow_id,
                row.name,
                n_jobs,
                released,
            )
        else:
            inputs = row.inputs or {}
            try:
                args = expand_map(
                    inputs.get("map"),
                    inputs.get("parameters", {}),
                    compiled.limits,
                    compiled.where(row.name),
                )
                # its jobs count like listed ones: one check per expansion, before writing
                quotas.check_expansion(conn, row.workflow_id, len(args))
            except InvalidInput as exc:
                works.stop(
                    conn, row.id, WorkStatus.FAILED, "error", f"cannot make jobs: {exc}", now
                )
                workflows.wake(conn, [row.workflow_id])
                return
            n_jobs = remaining = jobs.insert_ready(
                conn, row.workflow_id, row.id, args, compiled.max_attempts(row.name), now
            )
            log.info("workflow %s work %s: %d jobs ready", row.workflow_id, row.name, n_jobs)
        works.mark_running(conn, row.id, n_jobs, remaining, now)
        events.emit(conn, row.workflow_id, "work.running", {"work_id": row.id, "jobs": n_jobs}, now)
        if remaining == 0:
            status = work_outcome(works.counts(conn, row.id))
            works.finish(conn, row.id, status, "no jobs to run" if n_jobs == 0 else "", now)
            events.emit(conn, row.workflow_id, f"work.{status}", {"work_id": row.id}, now)
            workflows.wake(conn, [row.workflow_id])
