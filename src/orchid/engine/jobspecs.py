"""What an executor is handed for claimed job rows: one :class:`JobSpec` per attempt.

Shared by the carrier (which hands specs to its executor) and the worker desk (which sends
them to Orchid workers as JSON, :mod:`orchid.engine.workers`): both claim with the same
statement and must hand over the same payload, resources, retry policy and job token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.engine import Connection

from orchid import jobvars
from orchid.core import jobtoken, jsonvalues
from orchid.core.limits import Limits
from orchid.core.retry import RetryPolicy
from orchid.engine.templates import TemplateCache
from orchid.executors.base import JobSpec, JobUpdate, Payload, Resources
from orchid.store import dispatch, secrets

WORK_CACHE = 10_000


@dataclass(frozen=True)
class WorkInfo:
    """What every job of one work shares on its way to the executor."""

    workflow_id: int
    name: str
    payload: Payload
    resources: Resources
    retry: RetryPolicy
    api_token: bool  # each job gets a job token (ORCHID_TOKEN)
    per_job_payload: bool  # a custom HPO generator: its `gen:` jobs run another command
    owner: str = ""  # whose workflow it is
    share_group: str | None = None


def capped(u: JobUpdate, limits: Limits) -> JobUpdate:
    """The update, or a failure if its result is over ``result_max_bytes`` (whatever the
    executor: the local one refuses such results before reading them, others may not)."""
    if u.result is None or jsonvalues.size(u.result, limits.result_max_bytes) <= (
        limits.result_max_bytes
    ):
        return u
    return replace(u, state="failed", result=None, error=limits.result_too_large())


class JobSpecs:
    """Makes the specs of claimed rows, remembering what the jobs of each work share."""

    def __init__(self, templates: TemplateCache, clock: Callable[[], float]) -> None:
        self._templates = templates
        self._clock = clock
        self._works: dict[int, WorkInfo] = {}  # work id → what its jobs share
        self._job_key: bytes | None = None

    def work(self, conn: Connection, work_id: int, workflow_id: int) -> WorkInfo:
        """What the jobs of this work share."""
        if work_id not in self._works:
            self._learn(conn, {work_id: workflow_id})
        return self._works[work_id]

    def make(self, conn: Connection, rows: Sequence[Any], adopted: bool = False) -> list[JobSpec]:
        """The specs of claimed (or adopted) rows (``store.dispatch.Claimed``), in order."""
        missing = {r.work_id: r.workflow_id for r in rows if r.work_id not in self._works}
        if missing:
            self._learn(conn, missing)
        works = self._works
        specs: list[JobSpec] = []
        for r in rows:
            info = works[r.work_id]
            payload = info.payload
            if info.per_job_payload:
                compiled = self._templates.get(conn, r.workflow_id, (info.name,))
                payload = compiled.payload(info.name, r.name)
            job_env: dict[str, str] = {}
            if info.api_token:
                job_env[jobvars.TOKEN] = self._token(conn, r.workflow_id, r.id, r.attempt)
            specs.append(
                JobSpec(
                    f"{r.workflow_id}-{r.id}-{r.attempt}",  # JobSpec.make_key
                    r.workflow_id,
                    r.id,
                    r.attempt,
                    info.name,
                    r.name,
                    payload,
                    r.args,
                    info.resources,
                    env=job_env,
                    adopted=adopted,
                    owner=info.owner,
                    share_group=info.share_group,
                )
            )
        return specs

    def _learn(self, conn: Connection, works: Mapping[int, int]) -> None:
        """Remember what the jobs of these works (id → workflow id) share."""
        if len(self._works) > WORK_CACHE:
            self._works.clear()
        owners = dispatch.workflow_owners(conn, set(works.values()))
        for work_id, name in dispatch.work_names(conn, works).items():
            wf = works[work_id]
            owner, share_group = owners.get(wf, ("", None))
            compiled = self._templates.get(conn, wf, (name,))  # an open workflow grows
            spec = compiled.template.work(name)
            self._works[work_id] = WorkInfo(
                wf,
                name,
                compiled.payload(name),
                compiled.resources(name),
                compiled.retry_policy(name),
                spec.api_token,
                bool(spec.hpo is not None and spec.hpo.generator),
                owner,
                share_group,
            )

    def _token(self, conn: Connection, workflow_id: int, job_id: int, attempt: int) -> str:
        """A job token for this attempt (see :mod:`orchid.core.jobtoken`)."""
        if self._job_key is None:
            self._job_key = secrets.key(conn, secrets.JOB_TOKEN_KEY, self._clock())
        return jobtoken.make(self._job_key, workflow_id, job_id, attempt)
