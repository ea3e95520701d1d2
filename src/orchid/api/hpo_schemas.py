"""Request and response bodies of the study endpoints (``orchid.api.routes.hpo``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchid.core.hpo import SEGMENT_PATTERN
from orchid.core.study import MAX_NEXT
from orchid.store.trials import TrialRow

TrialStatus = Literal["waiting", "running", "complete", "pruned", "failed"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class StudyOut(_Out):
    id: int
    workflow_id: int
    work: str
    iteration: int
    status: str = Field(description="running, succeeded, partial, failed or cancelled")
    message: str
    mode: Literal["jobs", "pull"]
    strategy: str
    max_trials: int
    parallel: int
    summary: dict[str, Any] = Field(
        description="counts and the best trial (Pareto front for several objectives), "
        "per segment when there are segments"
    )


class TrialOut(_Out):
    id: int
    study_id: int
    segment: str
    number: int
    status: TrialStatus
    params: dict[str, Any]
    values: list[float] | None
    result: Any
    intermediate: dict[str, float] = Field(description="step → value")
    job_id: int | None
    worker: str | None
    error: str | None
    created_at: float
    finished_at: float | None

    @staticmethod
    def of(t: TrialRow) -> TrialOut:
        return TrialOut(
            id=t.id,
            study_id=t.study_id,
            segment=t.segment,
            number=t.number,
            status=t.status,
            params=dict(t.params),
            values=t.values,
            result=t.result,
            intermediate=dict(t.intermediate),
            job_id=t.job_id,
            worker=t.worker,
            error=t.error,
            created_at=t.created_at,
            finished_at=t.finished_at,
        )


class TrialPage(_Out):
    items: list[TrialOut]
    next_cursor: str | None


class NextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(1, ge=1, le=MAX_NEXT, description="how many points at most")
    segment: str | None = Field(None, pattern=SEGMENT_PATTERN)


class NextOut(_Out):
    study_status: str = Field(description="while running, an empty list means: ask again soon")
    trials: list[TrialOut]


class ReportIn(BaseModel):
    """An intermediate value (``step`` and ``value``), a final loss (``value``), several
    objectives (``values``), metrics holding the objectives by name, or a failure."""

    model_config = ConfigDict(extra="forbid")
    step: int | None = Field(None, ge=0, le=2**31)
    value: float | None = Field(None, allow_inf_nan=False)
    values: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(None, max_length=100)
    metrics: dict[str, Any] | None = None
    failed: str | None = Field(None, max_length=1000, description="why the evaluation failed")

    @model_validator(mode="after")
    def _something(self) -> ReportIn:
        if all(getattr(self, f) is None for f in ("value", "values", "metrics", "failed")):
            raise ValueError("report a value, values, metrics or failed")
        return self


class ReportOut(_Out):
    trial_id: int
    status: TrialStatus
    prune: bool = Field(description="the pruner stopped this trial: stop evaluating it")
