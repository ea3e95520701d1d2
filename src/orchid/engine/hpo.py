"""The HPO agent: keeps every study's trial slots full, asynchronously.

For each study that changed (a trial's job ended, a worker reported, a lease ran out)
it claims the study, records what ended, asks the pruner about running trials, and
asks the generator, rebuilt from the stored trials, for as many new points as slots
are free (shared fairly between segments) — never waiting for a whole generation.
New points become jobs of the hpo work (or, in pull mode, trials for workers to
fetch). All of it is one transaction per study: a crash leaves the old state or the
new one, and another agent carries on from the database.

The work stays ``running`` while its study runs: the study holds one unit of the
work's ``remaining`` count (a sentinel), so the trigger never ends the work when its
jobs happen to be all done; this agent ends it, with the study's outcome.

Reproducibility: with a ``seed``, trial ``n`` of a segment is proposed by a generator
seeded from the seed and ``n``, told the trials before it as they would stand with
``parallel`` trials in flight and the oldest ending first: those numbered ``n - parallel``
or lower with their results (the trial waits until they have ended), the others as
running. So a seeded study proposes the same points whatever order its trials end in
(given the same results; a pruner's decisions and a custom generator's requests still
depend on timing). Without a seed, a free slot is filled at once from every trial as it
stands.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Row

from orchid.core.hpo import HpoSpec, check_point
from orchid.core.states import TERMINAL_JOB, JobStatus, WorkflowStatus, WorkStatus
from orchid.core.study import (
    ACTIVE,
    Load,
    Trial,
    allocate,
    outcome,
    seed_for,
    seen_by,
    startable,
    summary,
    values_of,
)
from orchid.engine.agent import JOBS, STUDIES, TICK, WORKFLOWS, AgentEnv, Step, agent_id
from orchid.engine.templates import Compiled
from orchid.executors._process import AttemptFiles
from orchid.generators.base import GeneratorError, Proposal, make_generator
from orchid.generators.custom import parse_points, request
from orchid.store import events, studies, workflows, works
from orchid.store import trials as trial_rows
from orchid.store.trials import TrialRow

log = logging.getLogger(__name__)
# how often running trials' progress files are read (with a pruner); at most as often as
# the loop polls (its TICK, every `poll_interval`, 1 s by default)
PROGRESS_POLL_S = 0.5
MAX_PROGRESS_BYTES = 4 * 1024 * 1024
SUSPENDED_POLL_S = 1.0  # how often a suspended workflow's studies look for a resume


def start(conn: Connection, row: Row[Any], now: float) -> None:
    """The transformer starts an hpo work: its study, and the sentinel that keeps it running."""
    inputs = row.inputs or {}
    sid = studies.create(conn, row.workflow_id, row.id, inputs.get("parameters", {}), now)
    works.mark_running(conn, row.id, 0, 1, now)
    events.emit(conn, row.workflow_id, "work.running", {"work_id": row.id, "study_id": sid}, now)
    log.info("workflow %s work %s: study %s started", row.workflow_id, row.name, sid)


def trial_job_name(segment: str, number: int) -> str:
    return f"{segment}-{number}" if segment else str(number)


def generator_job_name(segment: str, k: int) -> str:
    """Custom generators' jobs: ``:`` is in no trial's name (segment names exclude it)."""
    return f"gen:{segment}:{k}" if segment else f"gen:{k}"


class Optimizer:
    """The agent (role ``hpo``)."""

    name = "hpo"

    def __init__(self, env: AgentEnv, log_dir: Path | None = None, owner: str | None = None):
        self.env = env
        self.log_dir = log_dir
        self.owner = owner or agent_id("hpo")

    def steps(self) -> Mapping[str, Step]:
        # trials that ended and new studies wake it (STUDIES); times that came (a running
        # trial's progress to read, a suspended study's look for a resume) come with the
        # loop's poll (TICK). Not every round: that cost every step of a job chain a look.
        return {STUDIES: self.run_once, TICK: self.run_once}

    def run_once(self) -> int:
        env = self.env
        # look before taking the write lock (a read waits for no writer)
        with env.db.engine.connect() as conn:
            if not studies.any_to_look_at(conn, env.clock()):
                return 0
        with env.db.begin() as conn:
            claimed = studies.claim(conn, self.owner, env.clock(), env.lease, 20)
        made = 0
        for sid, seq in claimed:
            with env.db.begin() as conn:
                if not studies.hold(conn, sid, self.owner, env.clock(), env.lease):
                    continue
                due, new = _Reconcile(self, conn, sid).run()
                studies.mark_seen(conn, sid, seq, self.owner, due, env.clock())
                made += new
        if made:
            env.bus.notify(JOBS)
        if claimed:
            env.bus.notify(WORKFLOWS)
        return len(claimed)


class _Reconcile:
    """One look at one study, inside the agent's transaction."""

    def __init__(self, agent: Optimizer, conn: Connection, study_id: int) -> None:
        self.agent, self.conn, self.sid = agent, conn, study_id
        self.now = agent.env.clock()
        self.study = studies.get(conn, study_id)
        self.work = studies.work_of(conn, self.study.work_id)
        self.compiled: Compiled = agent.env.templates.get(
            conn, self.study.workflow_id, (self.work.name,)
        )
        spec = self.compiled.template.work(self.work.name).hpo
        assert spec is not None  # a study is made for hpo works only
        self.spec: HpoSpec = spec
        self.goals = spec.goals()
        # only the open trials (at most `parallel`) and counts: a look costs O(parallel), and
        # a segment's whole history is read only when its generator or pruner needs it
        self.rows = {r.id: r for r in trial_rows.open_trials(conn, study_id)}
        self.created = trial_rows.created(conn, study_id)
        self.segments: dict[str, dict[str, Any]] = {
            s: dict(self.study.segments.get(s, {})) for s in spec.segment_names()
        }
        self.made = 0
        self.ended = 0

    # --- the steps -------------------------------------------------------------------

    def run(self) -> tuple[float | None, int]:
        if self.work.status != WorkStatus.RUNNING:
            self._abandon(f"the work is {self.work.status}")
            return None, 0
        wf = workflows.get(self.conn, self.study.workflow_id)
        finishing = studies.finishing(self.conn, wf.id)
        job_ids = [r.job_id for r in self.rows.values() if r.status == "running" and r.job_id]
        gen_ids = [g["job"] for s in self.segments.values() if (g := s.get("generator"))]
        self.jobs = trial_rows.job_states(self.conn, job_ids + gen_ids)
        self._sync_jobs()
        if self.spec.mode == "pull" and trial_rows.expire_leases(self.conn, self.sid, self.now):
            self.rows = {r.id: r for r in trial_rows.open_trials(self.conn, self.sid)}
        if self.spec.pruner is not None:
            self._prune()
        self._collect_generated()
        if wf.status == WorkflowStatus.RUNNING and not finishing:
            self._propose()
        elif finishing:
            for state in self.segments.values():
                state.setdefault("stopped", "the user asked the workflow to finish")
        studies.save_segments(self.conn, self.sid, self.segments)
        if self.made or self.ended:
            events.emit(
                self.conn,
                self.study.workflow_id,
                "hpo.trials",
                {"study_id": self.sid, "proposed": self.made, "ended": self.ended},
                self.now,
            )
        self._maybe_finish()
        if wf.status == WorkflowStatus.SUSPENDED:
            return self.now + SUSPENDED_POLL_S, self.made  # nothing wakes a study on resume
        return self._due(), self.made

    def _set(self, row: TrialRow, **changes: Any) -> TrialRow:
        trial_rows.update_trial(self.conn, row.id, **changes)
        new = replace(row, **changes)
        self.rows[row.id] = new
        return new

    def _sync_jobs(self) -> None:
        """Record the trials whose job ended: complete with their values, or failed."""
        for seen in list(self.rows.values()):
            js = self.jobs.get(seen.job_id or -1)
            if seen.status != "running" or js is None or js.status not in TERMINAL_JOB:
                continue
            self.ended += 1
            self._read_progress(seen)  # what it reported after we last looked
            row = self.rows[seen.id]
            if js.status == JobStatus.SUCCEEDED:
                values, why = values_of(js.result, self.goals)
                if values is not None:
                    self._set(
                        row,
                        status="complete",
                        values=list(values),
                        result=js.result,
                        finished_at=self.now,
                    )
                    continue
                self._set(row, status="failed", result=js.result, error=why, finished_at=self.now)
            else:
                self._set(
                    row, status="failed", error=js.error or str(js.status), finished_at=self.now
                )

    def _open(self) -> dict[str, list[TrialRow]]:
        """The open trials of each segment (rows ended in this look drop out)."""
        out: dict[str, list[TrialRow]] = defaultdict(list)
        for r in sorted(self.rows.values(), key=lambda r: (r.segment, r.number)):
            if r.status in ACTIVE:
                out[r.segment].append(r)
        return out

    def _history(self, seg: str) -> list[TrialRow]:
        """Every trial of a segment as stored now (this transaction's writes included)."""
        return trial_rows.trials_of(self.conn, self.sid, seg)

    def _prune(self) -> None:
        from orchid.generators import pruning

        for seg, open_rows in self._open().items():
            running = [r for r in open_rows if r.status == "running"]
            if not running:
                continue
            for r in running:
                self._read_progress(r)
            if not any(self.rows[r.id].intermediate for r in running):
                continue
            fresh = self._history(seg)
            try:
                decisions = pruning.decide(
                    self.spec, [r.as_trial() for r in fresh], [r.number for r in running]
                )
            except Exception:
                log.exception("study %s segment %r: the pruner failed; not pruning", self.sid, seg)
                continue
            for r in running:
                if r.number not in decisions:
                    continue
                prune, notes = decisions[r.number]
                row = self.rows[r.id]
                if dict(notes) != dict(row.system):
                    row = self._set(row, system=_json(notes))
                if prune:
                    last = max(row.intermediate, key=int)
                    self._set(
                        row, status="pruned", finished_at=self.now, error=f"pruned at step {last}"
                    )
                    self.ended += 1
                    if row.job_id:
                        trial_rows.cancel_jobs(self.conn, [row.job_id], self.now, "pruned")

    def _read_progress(self, row: TrialRow) -> None:
        """Intermediate values a running job appended to its progress file (local executor)."""
        js = self.jobs.get(row.job_id or -1)
        if self.agent.log_dir is None or js is None:
            return
        path = AttemptFiles.at(self.agent.log_dir, self.study.workflow_id, js.id, js.attempt)
        found = {**row.intermediate, **read_progress(path.progress)}
        if found != row.intermediate:
            self._set(row, intermediate=found)

    def _collect_generated(self) -> None:
        """Custom generators: the points of generator jobs that ended become trials."""
        for seg, state in self.segments.items():
            pending = state.get("generator")
            js = self.jobs.get(pending["job"]) if pending else None
            if pending is None or js is None or js.status not in TERMINAL_JOB:
                continue
            state["generator"] = None
            if js.status != JobStatus.SUCCEEDED:
                state["stopped"] = f"the generator job failed: {js.error or js.status}"
                continue
            try:
                points = parse_points(js.result, self.spec, int(pending["n"]))
            except GeneratorError as exc:
                state["stopped"] = str(exc)
                continue
            if not points:
                state["stopped"] = "the generator proposed no more points"
            self._add(seg, points)

    def _propose(self) -> None:
        open_rows = self._open()
        loads = []
        for seg in self.spec.segment_names():
            state = self.segments[seg]
            pending = state.get("generator")
            active = len(open_rows.get(seg, [])) + (int(pending["n"]) if pending else 0)
            made = self.created.get(seg, 0)
            wanted = 0 if state.get("stopped") or pending else self.spec.max_trials - made
            loads.append(Load(seg, active, max(wanted, 0)))
        for index, (seg, k) in enumerate(allocate(self.spec.parallel, loads).items()):
            if k <= 0:
                continue
            if self.spec.strategy == "custom":
                seed = seed_for(self.spec.seed, index, self.created.get(seg, 0))
                self._ask_command(seg, self._history(seg), k, seed)
                continue
            try:
                asked, points = self._ask(seg, index, k, open_rows.get(seg, []))
                for p in points:
                    problem = check_point(self.spec, dict(p.params))
                    if problem:
                        raise GeneratorError(f"proposed a point outside the space: {problem}")
            except GeneratorError as exc:
                self.segments[seg]["stopped"] = str(exc)
                continue
            except Exception as exc:  # a library bug must not stop the agent
                log.exception("study %s segment %r: the generator failed", self.sid, seg)
                self.segments[seg]["stopped"] = f"the {self.spec.strategy} generator failed: {exc}"
                continue
            if len(points) < asked:
                self.segments[seg]["stopped"] = "the search space is used up"
            self._add(seg, points)

    def _ask(
        self, seg: str, index: int, k: int, open_rows: list[TrialRow]
    ) -> tuple[int, list[Proposal]]:
        """Up to ``k`` new points of a segment: (how many were asked for, the points).

        Without a seed, one generator told every trial as it stands fills the free slots.
        With one, each trial is proposed by its own generator, seeded from the seed and its
        number and told what :func:`seen_by` shows it, once :func:`startable` allows: the
        same points whatever order trials end in. Random and grid learn nothing from
        results, so they need not wait for any.
        """
        spec, first = self.spec, self.created.get(seg, 0)
        learns = spec.strategy not in ("random", "grid")
        # a random sampler learns nothing from the history: do not read it
        trials = [r.as_trial() for r in self._history(seg)] if spec.strategy != "random" else []
        if spec.seed is None:
            generator = make_generator(spec, None)
            generator.tell(trials)
            return k, generator.ask(k)
        if learns:
            oldest = open_rows[0].number if open_rows else first
            k = min(k, startable(spec.parallel, first, oldest))
        lag = spec.parallel if learns else first + k + 1  # grid: every trial before it running
        out: list[Proposal] = []
        for n in range(first, first + k):
            generator = make_generator(spec, seed_for(spec.seed, index, n))
            generator.tell(seen_by(trials, n, lag))
            got = generator.ask(1)
            if not got:
                break
            out += got
            trials.append(Trial(n, got[0].params, "running", system=got[0].system))
        return k, out

    def _ask_command(self, seg: str, rows: list[TrialRow], k: int, seed: int | None) -> None:
        batch = self.spec.options.get("batch")
        n = min(k, int(batch)) if batch else k
        state = self.segments[seg]
        count = int(state.get("generated", 0))
        args = request(self.spec, seg, [r.as_trial() for r in rows], n, seed)
        (job,) = trial_rows.add_jobs(
            self.conn,
            self.study.workflow_id,
            self.study.work_id,
            [(generator_job_name(seg, count), args)],
            self.compiled.max_attempts(self.work.name),
            self.now,
        )
        state.update(generated=count + 1, generator={"job": job, "n": n})
        self.made += 1

    def _add(self, seg: str, points: list[Proposal]) -> None:
        if not points:
            return
        first = self.created.get(seg, 0)
        numbered = [(first + i, p.params, _json(p.system)) for i, p in enumerate(points)]
        pull = self.spec.mode == "pull"
        ids = trial_rows.add_trials(
            self.conn, self.sid, seg, numbered, "waiting" if pull else "running", self.now
        )
        if not pull:
            common = {**self.study.common, **self.spec.segment_args(seg)}
            named = [(trial_job_name(seg, n), {**common, **params}) for n, params, _ in numbered]
            job_ids = trial_rows.add_jobs(
                self.conn,
                self.study.workflow_id,
                self.study.work_id,
                named,
                self.compiled.max_attempts(self.work.name),
                self.now,
            )
            trial_rows.link_jobs(self.conn, list(zip(ids, job_ids, strict=True)))
        for r in trial_rows.trials_by_id(self.conn, ids):
            self.rows[r.id] = r
        self.created[seg] = first + len(points)
        self.made += len(points)

    # --- the end -------------------------------------------------------------------------

    def _segment_done(self, seg: str, open_rows: list[TrialRow]) -> bool:
        state = self.segments[seg]
        if state.get("generator") or open_rows:
            return False
        return bool(state.get("stopped")) or self.created.get(seg, 0) >= self.spec.max_trials

    def _all(self) -> dict[str, list[Any]]:
        return {s: [r.as_trial() for r in self._history(s)] for s in self.spec.segment_names()}

    def _maybe_finish(self) -> None:
        open_rows = self._open()
        if not all(self._segment_done(s, open_rows.get(s, [])) for s in self.spec.segment_names()):
            return
        if studies.remaining(self.conn, self.study.work_id) > 1:
            return  # the trigger has still to count some jobs off; it wakes us when it has
        trials = self._all()
        status, message = outcome(self.spec, trials)
        stopped = [
            f"{s or 'study'}: {st['stopped']}"
            for s, st in self.segments.items()
            if st.get("stopped")
        ]
        if stopped and status != WorkStatus.SUCCEEDED:
            message = "; ".join([message, *stopped])
        works.add_remaining(self.conn, {self.study.work_id: -1})
        wf_id = self.study.workflow_id
        if works.finish(self.conn, self.study.work_id, status, message, self.now):
            events.emit(
                self.conn, wf_id, f"work.{status}", {"work_id": self.study.work_id}, self.now
            )
        studies.finish(
            self.conn, self.sid, str(status), message, summary(self.spec, trials), self.now
        )
        workflows.wake(self.conn, [wf_id])
        log.info("workflow %s study %s %s %s", wf_id, self.sid, status, message)

    def _abandon(self, why: str) -> None:
        """The work ended without us (aborted): close the study and stop its trials."""
        job_ids = trial_rows.end_open_trials(self.conn, self.sid, why, self.now)
        trial_rows.cancel_jobs(self.conn, job_ids, self.now, why)
        studies.finish(
            self.conn, self.sid, "cancelled", why, summary(self.spec, self._all()), self.now
        )

    def _due(self) -> float | None:
        """When to look again without being woken: progress files to read, leases to expire."""
        running = [r for r in self.rows.values() if r.status == "running"]
        if not running:
            return None
        if self.spec.mode == "pull":
            leases = [r.lease_until for r in running if r.lease_until is not None]
            return min(leases) if leases else None
        if self.spec.pruner is not None and self.agent.log_dir is not None:
            return self.now + PROGRESS_POLL_S
        return None


def read_progress(path: Path) -> dict[str, float]:
    """``{step: value}`` from a progress file of JSON lines; bad lines are skipped."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_PROGRESS_BYTES)
    except OSError:
        return {}
    found: dict[str, float] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            item = json.loads(line)
            step, value = int(item["step"]), float(item["value"])
        except (ValueError, TypeError, KeyError):
            continue
        if step >= 0 and math.isfinite(value):
            found[str(step)] = value
    return found


def _json(value: Any) -> Any:
    return json.loads(json.dumps(dict(value), default=str))
