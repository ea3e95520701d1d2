"""What Orchid workers and the server say to each other (``/api/v1/workers/...``), as JSON.

A leased job travels as a :class:`WorkerJob` (the :class:`~orchid.executors.base.JobSpec`
as data: a command, a function's ``module:name``, arguments that are JSON values), and
comes back as :class:`WorkerUpdate` records with the tails of its logs. Nothing here is
ever unpickled or run by the server. The server owns the policy; these are only its words.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator

from orchid.core.model import JobUpdate, Usage
from orchid.executors.base import JobSpec, Payload, Resources

WORKER_ID = r"^[A-Za-z0-9._-]{1,40}$"
LOG_TAIL_BYTES = 1024 * 1024
"""How much of each of stdout and stderr a worker sends back per attempt (its end)."""
MAX_BATCH = 1000
"""The most jobs one lease, renewal or report names."""
_TAIL_CHARS = 4 * ((LOG_TAIL_BYTES + 2) // 3)  # base64 of LOG_TAIL_BYTES
MAX_ID = 2**62  # ids and attempts are 64-bit in the database

Id = Annotated[int, Field(ge=1, le=MAX_ID)]

WorkerId = Annotated[
    str,
    Field(
        pattern=WORKER_ID,
        description="the worker's own name, the same for its whole life (letters, digits, "
        "`._-`, at most 40): its leases are held in this name",
    ),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkerPayload(_In):
    kind: Literal["command", "function", "noop"]
    command: list[str] = []
    function: str | None = None
    env: dict[str, str] = {}
    workdir: str | None = None
    python_path: list[str] = []


class WorkerResources(_In):
    cores: int = 1
    memory_mb: int | None = None
    gpus: int = 0
    walltime_s: float | None = None
    queue: str | None = None


class WorkerJob(_In):
    """One leased attempt: what the local executor runs (see ``JobSpec``)."""

    key: str
    workflow_id: int
    job_id: int
    attempt: int
    work_name: str
    job_name: str
    payload: WorkerPayload
    args: dict[str, Any]
    resources: WorkerResources
    env: dict[str, str] = {}
    owner: str = ""
    share_group: str | None = None

    @classmethod
    def of(cls, spec: JobSpec) -> Self:
        p, r = spec.payload, spec.resources
        return cls(
            key=spec.key,
            workflow_id=spec.workflow_id,
            job_id=spec.job_id,
            attempt=spec.attempt,
            work_name=spec.work_name,
            job_name=spec.job_name,
            payload=WorkerPayload(
                kind=p.kind,
                command=list(p.command),
                function=p.function,
                env=dict(p.env),
                workdir=p.workdir,
                python_path=list(p.python_path),
            ),
            args=dict(spec.args),
            resources=WorkerResources(
                cores=r.cores,
                memory_mb=r.memory_mb,
                gpus=r.gpus,
                walltime_s=r.walltime_s,
                queue=r.queue,
            ),
            env=dict(spec.env),
            owner=spec.owner,
            share_group=spec.share_group,
        )

    def spec(self) -> JobSpec:
        p, r = self.payload, self.resources
        return JobSpec(
            key=JobSpec.make_key(self.workflow_id, self.job_id, self.attempt),
            workflow_id=self.workflow_id,
            job_id=self.job_id,
            attempt=self.attempt,
            work_name=self.work_name,
            job_name=self.job_name,
            payload=Payload(
                kind=p.kind,
                command=tuple(p.command),
                function=p.function,
                env=dict(p.env),
                workdir=p.workdir,
                python_path=tuple(p.python_path),
            ),
            args=self.args,
            resources=Resources(r.cores, r.memory_mb, r.gpus, r.walltime_s, r.queue),
            env=dict(self.env),
            owner=self.owner,
            share_group=self.share_group,
        )


class LeaseIn(_In):
    worker: WorkerId
    max: int = Field(1, ge=1, le=MAX_BATCH, description="the most jobs to lease now")
    queue: str | None = Field(
        None, description="the queue the worker means to serve (checked against its token's)"
    )


class LeaseOut(BaseModel):
    jobs: list[WorkerJob]
    lease_s: float = Field(description="renew the leases well within this many seconds")


class Attempt(_In):
    job_id: Id
    attempt: Id


class RenewIn(_In):
    worker: WorkerId
    jobs: list[Attempt] = Field(max_length=10 * MAX_BATCH)


class RenewOut(BaseModel):
    lost: list[Attempt] = Field(description="no longer this worker's: stop them, report nothing")
    cancel: list[Attempt] = Field(description="cancelled by their users: stop them")
    lease_s: float


class WorkerUsage(_In):
    wall_s: FiniteFloat = 0.0
    cpu_user_s: FiniteFloat = 0.0
    cpu_system_s: FiniteFloat = 0.0
    max_rss_kb: int = Field(0, ge=0, le=MAX_ID)


class WorkerUpdate(_In):
    """An attempt started or ended on the worker; an end carries the tails of its logs."""

    job_id: Id
    attempt: Id
    state: Literal["running", "succeeded", "failed"]
    at: FiniteFloat
    exit_code: int | None = Field(None, ge=-(2**31), lt=2**31)
    result: Any = None
    error: str | None = Field(None, max_length=10_000)
    usage: WorkerUsage | None = None
    started_at: FiniteFloat | None = None
    stdout: str = Field("", max_length=_TAIL_CHARS, description="base64 of its stdout's tail")
    stderr: str = Field("", max_length=_TAIL_CHARS, description="base64 of its stderr's tail")

    @field_validator("result")
    @classmethod
    def _json(cls, value: Any) -> Any:
        """A result is a JSON value with finite numbers (as the database stores it)."""
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            raise ValueError("the result has a number JSON cannot hold (NaN or infinity)") from None
        return value

    @classmethod
    def of(cls, u: JobUpdate, stdout: bytes = b"", stderr: bytes = b"") -> Self:
        usage = None
        if u.usage is not None:
            usage = WorkerUsage(
                wall_s=u.usage.wall_s,
                cpu_user_s=u.usage.cpu_user_s,
                cpu_system_s=u.usage.cpu_system_s,
                max_rss_kb=u.usage.max_rss_kb,
            )
        return cls(
            job_id=u.job_id,
            attempt=u.attempt,
            state=u.state,
            at=u.at,
            exit_code=u.exit_code,
            result=u.result,
            error=u.error,
            usage=usage,
            started_at=u.started_at,
            stdout=base64.b64encode(stdout[-LOG_TAIL_BYTES:]).decode(),
            stderr=base64.b64encode(stderr[-LOG_TAIL_BYTES:]).decode(),
        )

    def tails(self) -> tuple[bytes, bytes]:
        """stdout and stderr (ValueError if either is not base64)."""
        return (
            base64.b64decode(self.stdout, validate=True),
            base64.b64decode(self.stderr, validate=True),
        )

    def update(self, workflow_id: int, log_uri: str | None) -> JobUpdate:
        """The update as the carrier records it."""
        usage = None
        if self.usage is not None:
            u = self.usage
            usage = Usage(u.wall_s, u.cpu_user_s, u.cpu_system_s, u.max_rss_kb)
        return JobUpdate(
            JobSpec.make_key(workflow_id, self.job_id, self.attempt),
            self.job_id,
            self.attempt,
            self.state,
            self.at,
            exit_code=self.exit_code,
            result=self.result,
            error=self.error,
            usage=usage,
            log_uri=log_uri,
            started_at=self.started_at,
        )


class ReportIn(_In):
    worker: WorkerId
    updates: list[WorkerUpdate] = Field(max_length=MAX_BATCH)
    want: int = Field(
        0,
        ge=0,
        le=MAX_BATCH,
        description="lease up to this many ready jobs in the same transaction (the "
        "children the reported ends released among them): a lease call saved",
    )


class ReportOut(BaseModel):
    recorded: int = Field(description="updates recorded")
    jobs: list[WorkerJob] = Field(
        default_factory=list, description="jobs leased to the worker, as a lease answers"
    )
    lease_s: float | None = Field(None, description="as a lease answers, when jobs were leased")


class ReleaseIn(_In):
    worker: WorkerId


class ReleaseOut(BaseModel):
    released: int = Field(description="jobs in flight given back, to run again")


# --- the channel: the same four calls over one WebSocket --------------------------------

CHANNEL = "/channel"
"""The channel's path under ``/api/v1/workers``: a WebSocket that carries the same
lease, renew, report and release calls as the four routes, one after another, each
answered before the next is sent, without a request's routing, headers and handshake
each time (a chain's next job waits on a report's round trip)."""
OPS = ("lease", "renew", "report", "release")
_MAX_SEQ_DIGITS = 19


def call_frame(seq: int, op: str, body: BaseModel) -> str:
    """One call on the channel: a text frame ``"<seq> <op>\\n<JSON body>"``, the body as
    the route of that name takes it."""
    return f"{seq} {op}\n{body.model_dump_json()}"


def answer_frame(seq: int, status: int, body: str) -> str:
    """An answer on the channel: ``"<seq> <status>\\n<JSON body>"``, the status and body as
    the route would answer (``seq`` 0: the frame could not be read as a call)."""
    return f"{seq} {status}\n{body}"


def read_frame(text: str) -> tuple[int, str, str]:
    """A frame's sequence number, its op (a call) or status (an answer), and its body;
    ValueError with what is wrong for anything else."""
    head, newline, body = text.partition("\n")
    seq, space, word = head.partition(" ")
    digits = seq.isascii() and seq.isdigit()  # (isdigit alone takes '²' and other scripts')
    if not (newline and space and word and digits) or len(seq) > _MAX_SEQ_DIGITS:
        raise ValueError(
            "a frame is '<seq> <op>\\n<JSON body>' (e.g. '1 report\\n{...}'), seq a "
            "positive whole number"
        )
    return int(seq), word, body
