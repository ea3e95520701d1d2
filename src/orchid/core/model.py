"""Runtime entities as the layers above the store see them (read models, immutable)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from orchid.core import expr
from orchid.core.states import FileStatus, JobStatus, WorkflowStatus, WorkStatus


@dataclass(frozen=True)
class Workflow:
    id: int
    name: str
    owner: str
    status: WorkflowStatus
    message: str
    params: Mapping[str, Any]
    created_at: float
    updated_at: float
    finished_at: float | None = None
    share_group: str | None = None
    # retention: its rows are in an archive file since then (only a summary stays live)
    archived_at: float | None = None


@dataclass(frozen=True)
class Work:
    id: int
    workflow_id: int
    name: str
    iteration: int
    status: WorkStatus
    message: str = ""
    n_jobs: int = 0
    counts: Mapping[JobStatus, int] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class Job:
    id: int
    workflow_id: int
    work_id: int
    work_name: str
    name: str
    status: JobStatus
    args: Mapping[str, Any]
    attempt: int
    max_attempts: int
    exit_code: int | None = None
    result: Any = None
    error: str | None = None
    log_uri: str | None = None
    usage: Mapping[str, Any] | None = None
    ready_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class Collection:
    id: int
    workflow_id: int
    scope: str
    name: str
    manager: str


@dataclass(frozen=True)
class File:
    id: int
    collection_id: int
    name: str
    size: int
    status: FileStatus


@dataclass(frozen=True)
class FileInfo:
    """A file as the data system sees it (what a data manager lists and reports,
    ``orchid.datamgr.base``, and the store records).

    ``status`` is one of ``new`` (not on disk: on tape, or not requested), ``staging``,
    ``available`` (on disk at ``url``), ``failed`` (this staging attempt failed: ``error``
    says why) or ``deleted`` (gone from disk).
    """

    name: str
    size: int
    status: FileStatus
    url: str | None = None
    error: str | None = None
    # which staging attempt (1, 2, ...) a failure is about, when the manager knows: a
    # failure reported again (a poll replayed after a crash) is then not counted twice
    attempt: int = 0


@dataclass(frozen=True)
class Condition:
    """A predicate over run-time facts, written in Orchid's safe expression language."""

    source: str

    def holds(self, context: Mapping[str, Any]) -> bool:
        return bool(expr.evaluate(self.source, context))


@dataclass(frozen=True)
class Parameter:
    """A named input; ``value`` may hold ``${...}`` bindings resolved when its work starts."""

    name: str
    value: Any

    def bind(self, context: Mapping[str, Any]) -> Any:
        return expr.interpolate(self.value, context)


# --- crossing the executor seam (the store records these) ---------------------------------

UpdateState = Literal["running", "succeeded", "failed"]


@dataclass(frozen=True)
class Usage:
    """Resources a finished job used."""

    wall_s: float = 0.0
    cpu_user_s: float = 0.0
    cpu_system_s: float = 0.0
    max_rss_kb: int = 0


NO_USAGE = Usage()  # what an executor that measures nothing reports


@dataclass(slots=True)
class JobUpdate:
    """A change the executor observed in one job attempt. Not changed once made (use
    ``dataclasses.replace``); not frozen, because a frozen dataclass with this many fields
    costs four times as much to make, and an agent makes one per job and state."""

    key: str
    job_id: int
    attempt: int
    state: UpdateState
    at: float  # epoch seconds when it happened
    exit_code: int | None = None
    result: Any = None  # JSON value
    error: str | None = None  # short reason for a failure, for people
    usage: Usage | None = None
    log_uri: str | None = None  # where `orchid logs` finds stdout/stderr
    # a final update may say when the attempt started, instead of a `running` update of
    # its own (an executor that saw the whole run of a short job between two polls)
    started_at: float | None = None


# an agent seen this recently counts as alive (it beats every 10 s): the server's health
# answer and the CLI's "is anyone there to apply it" both go by it
ALIVE_S = 30.0


# --- who is calling (the API authenticates; the store looks up local tokens) --------------

AuthMethod = Literal["oidc", "x509", "token", "job", "worker"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the user name that owns workflows, and its groups."""

    user: str
    groups: frozenset[str]
    admin: bool
    method: AuthMethod
    workflow_id: int | None = None  # a job's token: it may act on this workflow only
    worker_queue: str | None = None  # a worker's token: it may lease this queue's jobs only


MAX_NAME_CHARS = 200  # user and group names: the width of the owner and user columns


def name_problem(name: str, what: str = "user name") -> str | None:
    """What is wrong with a user or group name, or None: the one rule for local token names
    and names from an identity provider (1 to 200 printable characters, no whitespace)."""
    if not name:
        return f"the {what} is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"the {what} {name[:40]!r}… is longer than {MAX_NAME_CHARS} characters"
    if any(c.isspace() for c in name):
        return f"the {what} {name!r} contains whitespace"
    if not name.isprintable():
        return f"the {what} {name!r} contains control characters"
    return None
