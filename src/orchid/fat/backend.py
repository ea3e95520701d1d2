"""The seam between Function-as-a-Task and an Orchid: the embedded engine, or a server.

:class:`Backend` is what a running workflow function needs: submit a workflow and find it
again, add works, close it, follow its jobs, and store blobs (source trees, big values) in
the cache. :func:`from_env` picks the server named by ``ORCHID_URL`` (or the client config
``orchid up`` wrote) and else the embedded engine over ``ORCHID_HOME`` / ``ORCHID_DB_URL``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

REPORT_KIND = "fat.report"  # the message kind orchid-job reports with over REST
TB_BEGIN = "----- orchid task traceback -----"
TB_END = "----- end of orchid task traceback -----"


@dataclass(frozen=True)
class JobRow:
    """A job that ended, as a future needs it."""

    id: int
    name: str  # the index of the call in its work
    status: str
    result: Any
    error: str | None
    log_uri: str | None


@dataclass(frozen=True)
class WorkRow:
    id: int
    name: str
    status: str


class Backend(Protocol):
    """An Orchid to run workflow functions against (see the module docstring)."""

    remote: bool

    def start(self) -> None:
        """Get ready (the embedded engine starts its agents)."""
        ...

    def stop(self) -> None: ...

    def put_blob(self, data: bytes) -> str:
        """Store bytes in the cache; their sha256."""
        ...

    def get_blob(self, sha256: str) -> bytes: ...

    def find_workflow(self, name: str, key: str) -> tuple[int, str] | None:
        """(id, status) of the newest workflow called ``name`` with this identity key."""
        ...

    def submit(self, template: Mapping[str, Any]) -> int: ...

    def add_work(self, workflow_id: int, spec: Mapping[str, Any]) -> tuple[int, bool]:
        """(work id, whether it was there already with another definition)."""
        ...

    def close(self, workflow_id: int, error: str | None) -> None: ...

    def workflow_status(self, workflow_id: int) -> tuple[str, str]:
        """(status, message)."""
        ...

    def works(self, workflow_id: int) -> list[WorkRow]: ...

    def finished_jobs(self, workflow_id: int, work_id: int, skip: Collection[int]) -> list[JobRow]:
        """The work's jobs that ended, but those whose ids are in ``skip``."""
        ...

    def reports(self, workflow_id: int, after: int) -> tuple[list[dict[str, Any]], int]:
        """Job reports posted since message ``after``, and the new cursor."""
        ...

    def traceback(self, job: JobRow) -> str:
        """The remote traceback a failed job printed, or ''."""
        ...

    def wait(self, workflow_id: int, seconds: float) -> None:
        """Return after ``seconds``, or sooner if the workflow may have changed."""
        ...

    def job_env(self) -> dict[str, str]:
        """What a job needs in its environment to reach this Orchid."""
        ...


def extract_traceback(text: str) -> str:
    """The last traceback orchid-job framed in a job's stderr, or ''."""
    end = text.rfind(TB_END)
    begin = text.rfind(TB_BEGIN, 0, end if end >= 0 else None)
    if begin < 0:
        return ""
    return text[begin + len(TB_BEGIN) : end if end > begin else None].strip("\n")


def from_env(*, in_job: bool = False) -> Backend:
    """The server of ``ORCHID_URL`` (with ``ORCHID_TOKEN``, or the token the client config
    file holds for that url), else the embedded engine (``ORCHID_HOME``, ``ORCHID_DB_URL``).

    ``in_job``: for orchid-job, whose embedded engine runs no agents of its own (the
    caller's agents run the job) and which reads no config file.
    """
    from orchid.client.config import from_environment

    url, token = from_environment()
    if url:
        from orchid.client import Client
        from orchid.client.config import ClientConfig
        from orchid.fat.remote import RemoteBackend

        config = ClientConfig(url, token) if in_job else ClientConfig.load()
        return RemoteBackend(Client.from_config(config))
    from orchid.fat.embedded import EmbeddedBackend
    from orchid.settings import Settings

    return EmbeddedBackend(Settings.load(), run_agents=not in_job)
