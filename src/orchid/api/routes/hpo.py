"""Studies (hyperparameter optimisation): list, read, fetch points, report losses.

Pull mode, as iDDS's get_hyperparameters / update_hyperparameter: external workers
``POST /studies/{id}/next`` to lease unevaluated points and ``POST /trials/{id}/report``
their loss. Jobs that Orchid runs report intermediate values with
``POST /jobs/{id}/report`` (the pruner may then stop them). Everyone sees the studies of
the workflows they may see; fetching and reporting need the right to act on it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from orchid.api.deps import JobCaller, State, now
from orchid.core.hpo import SEGMENT_PATTERN
from orchid.core.model import Principal
from orchid.engine.hpo_ops import Report, Studies
from orchid.errors import InvalidInput
from orchid.store import studies
from orchid.store import trials as trial_rows
from orchid.web.access import check_id, visible_workflow
from orchid.web.state import ApiState
from orchid.wire import (
    NextIn,
    NextOut,
    ReportIn,
    ReportOut,
    StudyOut,
    TrialOut,
    TrialPage,
    TrialStatus,
)

router = APIRouter(tags=["hpo"])


def _ops(request: Request) -> Studies:
    ops: Studies | None = getattr(request.app.state, "hpo_studies", None)
    if ops is None:
        ops = request.app.state.hpo_studies = Studies()
    return ops


def _study(st: ApiState, who: Principal, study_id: int, *, act: bool = False) -> studies.StudyRow:
    with st.db.engine.connect() as conn:
        study = studies.get(conn, check_id(study_id))
    visible_workflow(st, who, study.workflow_id, act=act, missing=studies.missing(study_id))
    return study


@router.get("/workflows/{workflow_id}/studies", response_model=list[StudyOut])
def list_studies(workflow_id: int, request: Request, st: State, who: JobCaller) -> list[StudyOut]:
    """The studies of a workflow (one per hpo work, per loop iteration)."""
    wf = visible_workflow(st, who, check_id(workflow_id))
    ops = _ops(request)
    with st.db.engine.connect() as conn:
        return [StudyOut(**ops.view(conn, s)) for s, _, _ in studies.of_workflow(conn, wf.id)]


@router.get("/studies/{study_id}", response_model=StudyOut)
def get_study(study_id: int, request: Request, st: State, who: JobCaller) -> StudyOut:
    """A study with its counts and best trials so far."""
    study = _study(st, who, study_id)
    with st.db.engine.connect() as conn:
        return StudyOut(**_ops(request).view(conn, study))


@router.get("/studies/{study_id}/trials", response_model=TrialPage)
def list_trials(
    study_id: int,
    st: State,
    who: JobCaller,
    segment: Annotated[str | None, Query(pattern=SEGMENT_PATTERN)] = None,
    status: Annotated[list[TrialStatus] | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=20, pattern=r"^\d+$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TrialPage:
    """A page of a study's trials in the order they were proposed."""
    study = _study(st, who, study_id)
    with st.db.engine.connect() as conn:
        rows = trial_rows.page(
            conn,
            study.id,
            segment=segment,
            status=list(status or []),
            after_id=int(cursor) if cursor else 0,
            limit=limit,
        )
    more = str(rows[-1].id) if len(rows) == limit else None
    return TrialPage(items=[TrialOut.of(t) for t in rows], next_cursor=more)


@router.post("/studies/{study_id}/next", response_model=NextOut)
def next_points(
    study_id: int, body: NextIn, request: Request, st: State, who: JobCaller
) -> NextOut:
    """Pull mode: lease up to `n` unevaluated points to you; report each one's loss before
    the study's `lease` runs out, or it is offered to another worker."""
    study = _study(st, who, study_id, act=True)
    with st.db.begin() as conn:
        status, rows = _ops(request).next_points(
            conn, study.id, n=body.n, segment=body.segment, worker=who.user, now=now()
        )
    return NextOut(study_status=status, trials=[TrialOut.of(t) for t in rows])


def _report(st: ApiState, request: Request, trial_id: int, body: ReportIn) -> ReportOut:
    with st.db.begin() as conn:
        status, prune = _ops(request).report(
            conn,
            trial_id,
            Report(body.step, body.value, body.values, body.metrics, body.failed),
            now(),
        )
    return ReportOut(trial_id=trial_id, status=status, prune=prune)


@router.post("/trials/{trial_id}/report", response_model=ReportOut)
def report_trial(
    trial_id: int, body: ReportIn, request: Request, st: State, who: JobCaller
) -> ReportOut:
    """Report a trial's loss (or values, metrics, failure), or an intermediate value."""
    with st.db.engine.connect() as conn:
        trial = trial_rows.get_trial(conn, check_id(trial_id))
        study = studies.get(conn, trial.study_id)
    visible_workflow(st, who, study.workflow_id, act=True, missing=f"no trial {trial_id}")
    return _report(st, request, trial_id, body)


@router.post("/jobs/{job_id}/report", response_model=ReportOut)
def report_job(
    job_id: int, body: ReportIn, request: Request, st: State, who: JobCaller
) -> ReportOut:
    """A trial job reports an intermediate value (`step`, `value`) by its job id."""
    if body.step is None:
        raise InvalidInput(
            "a job reports intermediate values (step and value); its result is final"
        )
    with st.db.engine.connect() as conn:
        trial = trial_rows.trial_of_job(conn, check_id(job_id))
        study = studies.get(conn, trial.study_id)
    hidden = f"job {job_id} is not a trial of a study"  # as for a job that does not exist
    visible_workflow(st, who, study.workflow_id, act=True, missing=hidden)
    return _report(st, request, trial.id, body)
