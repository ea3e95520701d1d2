"""The bodies that cross the wire: what the REST API accepts and answers, and what
``orchid.client`` parses its answers into (pydantic, so OpenAPI describes them).

One module for both sides, importing nothing of the store or the web framework, so that
``import orchid.client`` stays light. Answers are built from the read models of
``orchid.core.model`` and the store's dataclasses with ``model_validate(obj,
from_attributes=True)`` (``Out.of(obj)``), not copied field by field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)

from orchid.core.hpo import SEGMENT_PATTERN
from orchid.core.states import Action
from orchid.core.study import MAX_NEXT


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    @classmethod
    def of(cls, obj: object) -> Self:
        """The answer made of a read model or a store row (its attributes of the same names)."""
        return cls.model_validate(obj, from_attributes=True)


class Problem(_Out):
    field: str | None = None
    error: str


class ErrorOut(_Out):
    """Every error answer: what is wrong, where, and for invalid input each problem found."""

    error: str = Field(description="what is wrong and what to do about it")
    field: str | None = Field(None, description="the offending part of the request")
    problems: list[Problem] | None = None


class WorkflowOut(_Out):
    id: int
    name: str
    owner: str
    share_group: str | None
    status: str
    message: str
    params: dict[str, Any]
    created_at: float
    updated_at: float
    finished_at: float | None
    archived_at: float | None = Field(
        None,
        description="when its rows went into the archive (retention): its works and job "
        "counts still read as they were, its jobs answer 410 until `orchid restore ID`",
    )


class WorkOut(_Out):
    id: int
    name: str
    iteration: int
    status: str
    message: str
    counts: dict[str, int] = Field(description="jobs by status")
    started_at: float | None
    finished_at: float | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def jobs(self) -> int:
        return sum(self.counts.values())


class WorkflowDetail(WorkflowOut):
    works: list[WorkOut]


class JobOut(_Out):
    id: int
    workflow_id: int
    work: str = Field(validation_alias=AliasChoices("work", "work_name"))
    work_id: int | None = None  # the work row (a loop's work has one per iteration)
    name: str
    status: str
    args: dict[str, Any]
    attempt: int
    max_attempts: int
    exit_code: int | None
    result: Any
    error: str | None
    usage: dict[str, Any] | None
    ready_at: float | None
    started_at: float | None
    finished_at: float | None

    @field_validator("usage", mode="before")
    @classmethod
    def _none_if_empty(cls, usage: Any) -> Any:
        return usage or None  # a job that reported no usage


class WorkflowPage(_Out):
    items: list[WorkflowOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class JobPage(_Out):
    items: list[JobOut]
    next_cursor: str | None


class SubmitRequest(BaseModel):
    """A submission: the template (a mapping, or YAML/JSON text) and parameter values."""

    model_config = ConfigDict(extra="forbid")

    template: dict[str, Any] | str = Field(description="the template, decoded or as YAML text")
    params: dict[str, Any] = Field(default_factory=dict)
    share_group: str | None = Field(
        None, max_length=200, description="a group of yours whose members may see and steer it"
    )
    priority: int | None = Field(
        None, ge=-1000, le=1000, description="overrides the template's `priority:`"
    )
    base_dir: str | None = Field(
        None,
        max_length=4096,
        description="the template's folder, where its commands run and its functions are "
        "imported from; honoured only by a server that shares the submitter's machine and "
        "user (`orchid up`), ignored by others",
    )


class CommandOut(_Out):
    command_id: int
    workflow_id: int
    action: Action
    status: Literal["queued"] = "queued"


class Health(_Out):
    database: Literal["ok"]
    agents: list[dict[str, Any]]
    version: str


class WhoAmI(_Out):
    """The caller as the server authenticated it."""

    user: str
    groups: list[str]
    admin: bool
    method: str = Field(description="oidc, x509 or token")
    workflow_id: int | None = Field(None, description="a job token's own workflow")


# --- messages, cache, catalog ------------------------------------------------------------
# built from the store's dataclasses with ``model_validate(obj, from_attributes=True)``


class MessageIn(BaseModel):
    """A message to a workflow: a short kind and any JSON value (no NaN or infinity)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(
        pattern=r"^[a-z][a-z0-9_.-]{0,39}$",  # orchid.store.messages.KIND_PATTERN
        description="a short identifier, e.g. `result` or `control`",
        examples=["result"],
    )
    body: Any = Field(description="any JSON value, at most 1 MiB encoded")


class MessageOut(_Out):
    id: int
    workflow_id: int
    sender: str = Field(description="the user who posted it")
    kind: str
    body: Any
    created_at: float


class MessagePage(_Out):
    items: list[MessageOut]
    next_cursor: str | None = Field(
        description="pass as `after` for the next page; null when this page was not full "
        "(pollers pass the id of the last message they saw)"
    )


class CacheObjectOut(_Out):
    sha256: str
    size: int = Field(description="bytes")
    created_at: float = Field(description="when you first uploaded it")


class CachePage(_Out):
    items: list[CacheObjectOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class CollectionOut(_Out):
    id: int
    workflow_id: int
    work_id: int | None
    scope: str
    name: str
    manager: str = Field(description="the data manager that knows it (tapesim, posix, rucio)")
    status: str
    created_at: float
    files: int
    counts: dict[str, int] = Field(description="files by status")


class FileOut(_Out):
    id: int
    name: str
    size: int
    status: str = Field(description="new, staging, available, processing, processed, ...")


class FilePage(_Out):
    items: list[FileOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class AddWorkIn(BaseModel):
    """A work to add to a workflow that has not ended: a template's ``works`` item."""

    model_config = ConfigDict(extra="forbid")
    work: dict[str, Any] = Field(description="like an item of a template's `works`")


class AddedWorkOut(_Out):
    work_id: int
    name: str
    jobs: int
    created: bool = Field(description="false: a work of that name was there already")
    changed: bool = Field(description="it was there with another definition; the one there is kept")


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error: str | None = Field(
        None, max_length=20_000, description="the workflow failed, and why (None: it did not)"
    )


# --- HPO studies (orchid.api.routes.hpo) ---------------------------------------------

TrialStatus = Literal["waiting", "running", "complete", "pruned", "failed"]


class StudyOut(_Out):
    id: int
    workflow_id: int
    work: str = Field(validation_alias=AliasChoices("work", "work_name"))
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


# --- limits and fair share (admins) ------------------------------------------------------


class QuotaIn(BaseModel):
    """A limit or a fair-share weight to set (``orchid quota set``)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="user, group or executor")
    subject: str = Field(min_length=1, max_length=200, description="its name")
    quota: str = Field(
        description="running, queued, jobs_per_workflow, workflows_per_day, cache_bytes, "
        "result_bytes, weight"
    )
    value: int = Field(ge=0, le=2**62)
    executor: str = Field("", max_length=100, description="running limits: on this executor only")


class QuotaOut(_Out):
    """A quota and what its subject uses now (weights: the decayed usage, in slots)."""

    kind: str
    subject: str
    quota: str
    value: int
    executor: str
    used: float
