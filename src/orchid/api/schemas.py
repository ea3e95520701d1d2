"""Response and request bodies of the REST API (pydantic, so OpenAPI describes them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchid.core.model import Job, Work, Workflow


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Problem(_Out):
    field: str | None = None
    error: str


class ErrorOut(_Out):
    """Every error answer: what is wrong, where, and for invalid input each problem found."""

    error: str = Field(description="what is wrong and what to do about it")
    field: str | None = Field(None, description="the offending part of the request")
    problems: list[Problem] | None = None


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


# documented on every route (FastAPI's own 422 model would describe a body we never send)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("the request is malformed"),
    401: _error("no or invalid credentials (see WWW-Authenticate)"),
    403: _error("authenticated, but not allowed"),
    404: _error("no such resource"),
    409: _error("the change conflicts with the resource's state"),
    413: _error("the request body is too large"),
    422: _error("invalid input: `field` and `problems` say where"),
}


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

    @staticmethod
    def of(w: Workflow) -> WorkflowOut:
        return WorkflowOut(
            id=w.id,
            name=w.name,
            owner=w.owner,
            share_group=w.share_group,
            status=w.status,
            message=w.message,
            params=dict(w.params),
            created_at=w.created_at,
            updated_at=w.updated_at,
            finished_at=w.finished_at,
        )


class WorkOut(_Out):
    id: int
    name: str
    iteration: int
    status: str
    message: str
    jobs: int
    counts: dict[str, int] = Field(description="jobs by status")
    started_at: float | None
    finished_at: float | None

    @staticmethod
    def of(w: Work) -> WorkOut:
        return WorkOut(
            id=w.id,
            name=w.name,
            iteration=w.iteration,
            status=w.status,
            message=w.message,
            jobs=sum(w.counts.values()),
            counts={str(k): v for k, v in w.counts.items()},
            started_at=w.started_at,
            finished_at=w.finished_at,
        )


class WorkflowDetail(WorkflowOut):
    works: list[WorkOut]


class JobOut(_Out):
    id: int
    workflow_id: int
    work: str
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

    @staticmethod
    def of(j: Job) -> JobOut:
        return JobOut(
            id=j.id,
            workflow_id=j.workflow_id,
            work=j.work_name,
            work_id=j.work_id,
            name=j.name,
            status=j.status,
            args=dict(j.args),
            attempt=j.attempt,
            max_attempts=j.max_attempts,
            exit_code=j.exit_code,
            result=j.result,
            error=j.error,
            usage=dict(j.usage) if j.usage else None,
            ready_at=j.ready_at,
            started_at=j.started_at,
            finished_at=j.finished_at,
        )


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
    action: Literal["abort", "suspend", "resume", "retry", "finish"]
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
