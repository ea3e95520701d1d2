"""What people and workers do to studies: list them, fetch points (pull mode), report
losses and intermediate values, read the best trials. Used by the REST API and the CLI.

Reports are stored and the study woken; the HPO agent decides (pruning, new points) on
its next look, so every decision is made in one place. A worker learns that its trial
was pruned from the answer to its next report.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from orchid.core.hpo import HpoSpec
from orchid.core.study import MAX_NEXT, summary, values_of
from orchid.engine.templates import TemplateCache
from orchid.errors import InvalidInput, InvalidTransition
from orchid.store import studies
from orchid.store import trials as trial_rows
from orchid.store.studies import StudyRow
from orchid.store.trials import TrialRow


@dataclass(frozen=True)
class Report:
    """A worker's word on a trial: an intermediate ``value`` at ``step``, a final result
    (``value``, ``values`` or ``metrics`` holding the objectives), or ``failed``."""

    step: int | None = None
    value: float | None = None
    values: list[float] | None = None
    metrics: Mapping[str, Any] | None = None
    failed: str | None = None


class Studies:
    """Study operations over one database; holds a cache of compiled templates."""

    def __init__(self, templates: TemplateCache | None = None) -> None:
        self.templates = templates or TemplateCache()

    def spec(self, conn: Connection, study: StudyRow) -> tuple[HpoSpec, str, int]:
        """The study's hpo block, its work's name and iteration."""
        for s, name, iteration in studies.of_workflow(conn, study.workflow_id):
            if s.id == study.id:
                spec = self.templates.get(conn, study.workflow_id, (name,)).template.work(name).hpo
                assert spec is not None
                return spec, name, iteration
        raise InvalidInput(f"study {study.id} has no work")  # pragma: no cover - FK

    def view(self, conn: Connection, study: StudyRow) -> dict[str, Any]:
        """A study as the API shows it: its block, counts and best trials so far."""
        spec, name, iteration = self.spec(conn, study)
        by_seg: dict[str, list[Any]] = defaultdict(list)
        for t in trial_rows.trials_of(conn, study.id):
            by_seg[t.segment].append(t.as_trial())
        return {
            "id": study.id,
            "workflow_id": study.workflow_id,
            "work": name,
            "iteration": iteration,
            "status": study.status,
            "message": study.message,
            "mode": spec.mode,
            "strategy": spec.strategy,
            "max_trials": spec.max_trials,
            "parallel": spec.parallel,
            "summary": study.summary or summary(spec, by_seg),
        }

    def next_points(
        self,
        conn: Connection,
        study_id: int,
        *,
        n: int,
        segment: str | None,
        worker: str,
        now: float,
    ) -> tuple[str, list[TrialRow]]:
        """Pull mode: lease up to ``n`` unevaluated points to ``worker``; (study status, them).

        An empty list while the study runs means every point is out: ask again soon.
        """
        if not 1 <= n <= MAX_NEXT:
            raise InvalidInput(f"n must be from 1 to {MAX_NEXT}; got {n}")
        study = studies.get(conn, study_id)
        spec, _, _ = self.spec(conn, study)
        if spec.mode != "pull":
            raise InvalidInput(
                f"study {study_id} runs its trials as jobs; only studies with `mode: pull` "
                "hand points to external workers"
            )
        if segment is not None and segment not in spec.segment_names():
            raise InvalidInput(f"study {study_id} has no segment {segment!r}")
        if study.status != "running":
            return study.status, []
        return study.status, trial_rows.lease_waiting(
            conn, study_id, segment, n, worker, now, spec.lease
        )

    def report(self, conn: Connection, trial_id: int, r: Report, now: float) -> tuple[str, bool]:
        """Record a report; returns the trial's status and whether the worker should stop.

        Locks the study before the trial, in the order the HPO agent takes them.
        """
        study_id = trial_rows.get_trial(conn, trial_id).study_id
        studies.wake(conn, [study_id])
        trial = trial_rows.get_trial(conn, trial_id, lock=True)
        study = studies.get(conn, study_id)
        spec, _, _ = self.spec(conn, study)
        goals = spec.goals()
        if trial.status == "pruned":
            return trial.status, True
        if trial.status not in ("running", "waiting"):
            raise InvalidTransition(f"trial {trial.id} has already ended ({trial.status})")
        final = r.values is not None or r.metrics is not None or r.failed is not None
        if r.step is not None:
            if final or r.value is None:
                raise InvalidInput("an intermediate report is a `step` and a `value`, alone")
            _finite(r.value)
            merged = {**trial.intermediate, str(r.step): float(r.value)}
            trial_rows.update_trial(conn, trial.id, intermediate=merged)
            return trial.status, False
        if trial.job_id is not None:
            raise InvalidInput(
                f"trial {trial.id} runs as job {trial.job_id}: its result is the job's result; "
                "report only intermediate values (step and value) for it"
            )
        if r.failed is not None:
            trial_rows.update_trial(
                conn, trial.id, status="failed", error=r.failed[:1000], finished_at=now
            )
        else:
            result: Any = dict(r.metrics) if r.metrics is not None else None
            if r.values is not None:
                if len(r.values) != len(goals):
                    raise InvalidInput(
                        f"the study has {len(goals)} objectives; got {len(r.values)} values"
                    )
                result = {
                    **(result or {}),
                    **{g.name: v for g, v in zip(goals, r.values, strict=True)},
                }
            if r.value is not None and result is None:
                result = r.value
            values, why = values_of(result, goals)
            if values is None:
                raise InvalidInput(why)
            trial_rows.update_trial(
                conn,
                trial.id,
                status="complete",
                values=list(values),
                result=result,
                finished_at=now,
            )
        return "failed" if r.failed is not None else "complete", False


def _finite(v: float) -> None:
    if not math.isfinite(v):
        raise InvalidInput("values must be finite numbers")
