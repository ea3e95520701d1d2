"""The clerk: applies user commands, evaluates conditions and loops, starts and ends works.

For each workflow that changed, it loads a snapshot, asks the pure planner what
to do, writes that, and asks again until nothing changes — all in one
transaction, so a crash leaves either the old state or the new one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from sqlalchemy.engine import Connection

from orchid.core.plan import Decision, LoopState
from orchid.core.states import TERMINAL_WORKFLOW, WorkflowStatus, workflow_transition
from orchid.engine.agent import CANCEL, ENDED, JOBS, WORKFLOWS, WORKS, AgentEnv, Step, agent_id
from orchid.errors import InvalidTransition
from orchid.store import commands, events, jobs, workflows, works

log = logging.getLogger(__name__)
MAX_ROUNDS = 200  # decisions per look; each round settles at least one work or loop


class Clerk:
    name = "clerk"

    def __init__(self, env: AgentEnv, owner: str | None = None) -> None:
        self.env = env
        self.owner = owner or agent_id("clerk")

    def steps(self) -> Mapping[str, Step]:
        return {WORKFLOWS: self.run_once}

    def run_once(self) -> int:
        env = self.env
        with env.db.begin() as conn:
            t0 = time.perf_counter()
            claimed = workflows.claim_changed(conn, self.owner, env.clock(), env.lease, 50)
            env.metrics.claim(self.name, time.perf_counter() - t0, len(claimed))
        for workflow_id, seq in claimed:
            with env.db.begin() as conn:
                if not workflows.hold(conn, workflow_id, self.owner, env.clock(), env.lease):
                    log.warning("workflow %s: lease lost before reconciling; skipped", workflow_id)
                    continue
                self._reconcile(conn, workflow_id)
                workflows.mark_seen(conn, workflow_id, seq, self.owner)
        return len(claimed)

    def _reconcile(self, conn: Connection, workflow_id: int) -> None:
        compiled = self.env.templates.get(conn, workflow_id)
        for command_id, kind in commands.pending(conn, workflow_id):
            self._command(conn, workflow_id, command_id, kind)
        for _ in range(MAX_ROUNDS):
            a = compiled.analysis
            state = workflows.run_state(conn, workflow_id, a.read_outputs, a.read_counts)
            names = {w.name for w in state.works}
            if not names <= compiled.names:  # works were added since it was compiled
                compiled = self.env.templates.get(conn, workflow_id, names)
                a = compiled.analysis
                state = workflows.run_state(conn, workflow_id, a.read_outputs, a.read_counts)
            decision = compiled.planner.decide(state)
            if not decision:
                return
            self._apply(conn, workflow_id, state.status, dict(state.loops), decision)
        log.warning(
            "workflow %s: still changing after %d rounds; continuing later", workflow_id, MAX_ROUNDS
        )
        workflows.wake(conn, [workflow_id])

    def _apply(
        self,
        conn: Connection,
        workflow_id: int,
        status: WorkflowStatus,
        loops: dict[str, LoopState],
        d: Decision,
    ) -> None:
        now = self.env.clock()
        starting = d.workflow_status == WorkflowStatus.RUNNING
        if starting:  # the workflow starts before its works do; it ends after they end
            self._set_status(conn, workflow_id, status, d, now)
        if d.loops:
            loops.update(d.loops)
            workflows.save_loops(conn, workflow_id, loops, now)
            for name, ls in d.loops.items():
                events.emit(conn, workflow_id, "loop", {"loop": name, **ls.to_json()}, now)
        if d.create:
            works.create(conn, workflow_id, d.create, frozenset(), now)
        for start in d.start:
            works.set_ready(conn, start.work_id, start.inputs)
            events.emit(conn, workflow_id, "work.ready", {"work_id": start.work_id}, now)
        for stop in d.stop:
            works.stop(conn, stop.work_id, stop.status, stop.cause, stop.message, now)
            events.emit(
                conn,
                workflow_id,
                f"work.{stop.status}",
                {"work_id": stop.work_id, "message": stop.message},
                now,
            )
            log.info(
                "workflow %s work %s %s: %s", workflow_id, stop.work_id, stop.status, stop.message
            )
        if d.workflow_status is not None and not starting:
            self._set_status(conn, workflow_id, status, d, now)
        if d.start:
            self.env.bus.notify(WORKS)
        if d.stop:  # their waiting jobs were skipped: the trigger passes that on
            self.env.bus.notify(ENDED)

    def _set_status(
        self, conn: Connection, workflow_id: int, status: WorkflowStatus, d: Decision, now: float
    ) -> None:
        target = d.workflow_status
        if target is None:
            return
        workflow_transition(status, target)
        workflows.set_status(conn, workflow_id, target, d.message, now)
        events.emit(conn, workflow_id, f"workflow.{target}", {"message": d.message}, now)
        log.info("workflow %s %s %s", workflow_id, target, d.message)

    def _command(self, conn: Connection, workflow_id: int, command_id: int, kind: str) -> None:
        now = self.env.clock()
        wf = workflows.get(conn, workflow_id)
        target = {
            "abort": WorkflowStatus.CANCELLED,
            "suspend": WorkflowStatus.SUSPENDED,
            "resume": WorkflowStatus.RUNNING,
            "retry": WorkflowStatus.RUNNING,
            "finish": wf.status,  # the status stays; the planner starts nothing new
        }[kind]
        try:
            if kind == "finish" and wf.status in TERMINAL_WORKFLOW:
                raise InvalidTransition(f"workflow {workflow_id} has already ended ({wf.status})")
            if kind == "retry" and wf.status == WorkflowStatus.SUSPENDED:
                raise InvalidTransition(
                    f"workflow {workflow_id} is suspended; resume it first, then retry"
                )
            if kind == "finish" or (kind == "retry" and wf.status == WorkflowStatus.RUNNING):
                pass  # finish keeps the status; a running workflow's failed jobs may be retried
            elif kind == "resume" and wf.status != WorkflowStatus.SUSPENDED:
                raise InvalidTransition(f"workflow {workflow_id} is {wf.status}, not suspended")
            else:
                workflow_transition(wf.status, target)
        except InvalidTransition as exc:
            message = f"cannot {kind}: {exc}"
            commands.done(conn, command_id, "rejected", message, now)
            events.emit(
                conn, workflow_id, "command.rejected", {"command": kind, "message": message}, now
            )
            return
        if kind == "abort":
            # works first: on PostgreSQL this waits for a transformer still writing a work's
            # jobs, so the jobs statement below then sees (and cancels) all of them
            for work_id in works.cancel_all(conn, workflow_id, now):
                events.emit(conn, workflow_id, "work.cancelled", {"work_id": work_id}, now)
            jobs.cancel_workflow(conn, workflow_id, now)
            state = workflows.run_state(conn, workflow_id, frozenset())
            loops = {
                n: LoopState("cancelled", s.iteration, s.vars, "aborted", serial=s.serial)
                if s.status in ("waiting", "running")
                else s
                for n, s in state.loops.items()
            }
            workflows.save_loops(conn, workflow_id, loops, now)
            self.env.bus.notify(ENDED)
            self.env.bus.notify(CANCEL)
        elif kind == "retry":
            self._retry(conn, workflow_id, now)
        elif kind == "finish":
            workflows.set_finishing(conn, workflow_id, now)
        if kind == "resume":
            self.env.bus.notify(JOBS)  # its ready jobs may be claimed again
        if wf.status != target:
            message = f"{kind} by the user" if kind != "retry" else ""
            workflows.set_status(conn, workflow_id, target, message, now)
            events.emit(conn, workflow_id, f"workflow.{target}", {"message": message}, now)
        commands.done(conn, command_id, "applied", "", now)
        events.emit(conn, workflow_id, f"command.{kind}", {}, now)
        log.info("workflow %s: %s applied", workflow_id, kind)

    def _retry(self, conn: Connection, workflow_id: int, now: float) -> None:
        works.reopen(conn, workflow_id)
        open_works = {
            w.id: w.name
            for w in works.list_for(conn, workflow_id, with_counts=False)
            if w.status not in ("succeeded", "skipped", "cancelled")
        }
        compiled = self.env.templates.get(conn, workflow_id, open_works.values())
        extra = {wid: compiled.max_attempts(name) for wid, name in open_works.items()}
        reopened = jobs.reopen_failed(conn, workflow_id, extra, list(open_works))
        works.add_remaining(conn, dict(reopened))
        state = workflows.run_state(conn, workflow_id, frozenset())
        loops = {n: ls.after_retry() for n, ls in state.loops.items()}
        workflows.save_loops(conn, workflow_id, loops, now)
        self.env.bus.notify(JOBS)


__all__ = ["TERMINAL_WORKFLOW", "Clerk"]
