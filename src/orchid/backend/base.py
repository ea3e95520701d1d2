"""The one interface between the callers of Orchid and an Orchid: here, or a server.

:class:`Backend` is what the CLI (``status``, ``watch``, ``submit``, the commands, ``logs``),
Function-as-a-Task and :class:`orchid.hpo.Study` need from an Orchid, written once for each
kind: :class:`~orchid.backend.embedded.EmbeddedBackend` over this process's database (and,
if asked, agents in a thread: :class:`~orchid.engine.inprocess.Engine`), and
:class:`~orchid.backend.remote.RemoteBackend` over the REST API
(:class:`orchid.client.Client`). Each view (a progress table, the failures, a log) is
written once against it.

Why a package of its own: it sits above ``engine``/``store`` (the embedded kind) and
``client`` (the remote kind) and below the three that use it (``cli``, ``fat``, ``hpo``'s
``Study``), none of which is below the others. This module imports neither kind: a caller
that only talks to a server loads no store code through it (:func:`from_env` and the
kinds' modules import what they need).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

if TYPE_CHECKING:
    from orchid.core.model import Job, Work, Workflow
    from orchid.core.states import Action
    from orchid.graph import TaskGraph
    from orchid.wire import JobOut

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


@dataclass(frozen=True)
class FailedJob:
    """A failed job, as ``orchid status`` names it."""

    id: int
    work: str
    name: str
    attempt: int
    error: str | None


@dataclass(frozen=True)
class JobLine:
    """One job as `orchid jobs` shows it (`--json` prints these fields)."""

    id: int
    work: str
    iteration: int  # of the work's loop (`loop.iteration`); 0 outside loops
    name: str
    status: str
    attempt: int
    max_attempts: int
    exit_code: int | None
    ready_at: float | None
    started_at: float | None
    finished_at: float | None
    error: str | None

    @classmethod
    def of(cls, job: Job | JobOut, work: str, iteration: int) -> JobLine:
        """The row of a job read from the database or through the API (same field names)."""
        return cls(
            job.id,
            work,
            iteration,
            job.name,
            str(job.status),
            job.attempt,
            job.max_attempts,
            job.exit_code,
            job.ready_at,
            job.started_at,
            job.finished_at,
            job.error,
        )


class WorkflowLine(Protocol):
    """A workflow as the list of ``orchid status`` shows it."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def created_at(self) -> float: ...
    @property
    def message(self) -> str: ...
    @property
    def archived_at(self) -> float | None: ...


class StopsOnExit:
    """``with backend:`` stops it at the end (a base of both kinds of backend)."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Backend(Protocol):
    """An Orchid (see the module docstring). ``with backend:`` stops it at the end."""

    remote: bool
    location: str  # the server's url, or the database's

    def start(self) -> None:
        """Get ready (the embedded engine starts its agents, if it runs any)."""
        ...

    def stop(self) -> None:
        """Release what it holds (the agents, the connections)."""
        ...

    def __enter__(self) -> Backend: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    # --- what people look at (the CLI) ---------------------------------------------------

    def snapshot(self, workflow_id: int) -> tuple[Workflow, list[Work]]:
        """The workflow and all its works, with their job counts."""
        ...

    def recent(self, limit: int) -> list[WorkflowLine]:
        """The newest workflows (those the caller may see), newest first."""
        ...

    def failed_jobs(self, workflow_id: int, limit: int) -> list[FailedJob]:
        """The first failed jobs of the workflow."""
        ...

    def work_list(self, workflow_id: int) -> list[tuple[int, str, int]]:
        """(id, name, iteration) of each of the workflow's works (NotFound: no workflow)."""
        ...

    def job_lines(
        self, workflow_id: int, *, status: Sequence[str], work_id: int | None, page: int
    ) -> Iterator[tuple[int | None, JobLine]]:
        """The workflow's jobs (of one work, of some statuses) in id order, each with its
        work's id, read ``page`` at a time."""
        ...

    def graph(self, workflow_id: int) -> TaskGraph:
        """The workflow's works, their dependencies and their progress."""
        ...

    def studies(self, workflow_id: int) -> list[dict[str, Any]]:
        """The workflow's studies as the API shows them (``orchid hpo studies``)."""
        ...

    def study_view(self, workflow_id: int, work: str | None) -> dict[str, Any]:
        """The study of the workflow's hpo work ``work`` (may be left out when there is one
        hpo work), its latest iteration, as the API shows it."""
        ...

    def next_points(
        self, workflow_id: int, work: str | None, *, n: int, segment: str | None
    ) -> tuple[str, list[tuple[int, str, Any]]]:
        """Lease up to ``n`` points of a pull-mode study: its status, and (trial id,
        segment, params) of each point."""
        ...

    def report(
        self,
        trial: int,
        *,
        value: float | None,
        values: list[float] | None,
        step: int | None,
        failed: str | None,
    ) -> tuple[str, bool]:
        """Report a trial's value (or an intermediate one at ``step``): its status, and
        whether the pruner stopped it."""
        ...

    def watcher(self, workflow_id: int) -> Callable[[], None]:
        """A function that returns when it is time to look at the workflow again (and
        raises what stopped the watching)."""
        ...

    def submit_file(
        self, path: Path, params: Mapping[str, Any], share_group: str | None = None
    ) -> int:
        """Submit the template of a file (its folder is the base of relative paths)."""
        ...

    def act(self, workflow_id: int, action: Action) -> None:
        """Queue a command for the agents."""
        ...

    def agents_alive(self) -> bool:
        """Whether an agent was seen lately (one that will apply commands)."""
        ...

    def logs(self, job_id: int, stream: str) -> Iterator[bytes]:
        """A job's stdout or stderr (its latest attempt), in chunks."""
        ...

    # --- what a running workflow function (Function-as-a-Task) or a study needs ---------

    def put_blob(self, data: bytes) -> str:
        """Store bytes in the cache; their sha256."""
        ...

    def get_blob(self, sha256: str) -> bytes: ...

    def find_workflow(self, name: str, key: str) -> tuple[int, str] | None:
        """(id, status) of the newest workflow called ``name`` with this identity key."""
        ...

    def submit(self, template: Mapping[str, Any], *, base_dir: Path | None = None) -> int:
        """Submit a decoded template; ``base_dir``: where its relative paths start (the
        embedded engine; a server resolves them in its own way)."""
        ...

    def study(self, workflow_id: int) -> tuple[Mapping[str, Any], list[dict[str, Any]]]:
        """The summary and the trials (number, segment, status, params, values, result) of
        the workflow's first study (``hpo.Study``)."""
        ...

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
