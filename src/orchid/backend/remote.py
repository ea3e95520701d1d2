"""An Orchid server as a :class:`~orchid.backend.base.Backend`, through
:class:`orchid.client.Client`.

Views follow a workflow through its event stream: it says when something changed, then
one request reads the workflow (many events in a burst cost one read). For
Function-as-a-Task, jobs report over REST (``fat.report`` messages, which carry results and tracebacks as
they come); the workflow's event stream wakes the futures, which read the reports since
the last look, and the ended jobs of works that ended or reported a failure.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from orchid.backend.base import (
    REPORT_KIND,
    FailedJob,
    JobLine,
    JobRow,
    StopsOnExit,
    WorkflowLine,
    WorkRow,
    extract_traceback,
)
from orchid.client import Client
from orchid.client.errors import ClientError
from orchid.core.model import Work, Workflow
from orchid.core.states import TERMINAL_JOB, JobStatus

if TYPE_CHECKING:
    from orchid.core.states import Action
    from orchid.graph import TaskGraph
    from orchid.wire import WorkflowDetail

log = logging.getLogger(__name__)
ENDED = sorted(TERMINAL_JOB)  # the statuses of ended jobs, as the API names them
MIN_INTERVAL = 0.25  # seconds between reads of a busy workflow a view follows
MAX_INTERVAL = 5.0  # and of a quiet one (the elapsed time still moves)


class RemoteBackend(StopsOnExit):
    remote = True

    def __init__(self, client: Client) -> None:
        self.client = client
        self.location = client.url
        self._changed: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.client.close()

    # --- views ----------------------------------------------------------------------------

    def snapshot(self, workflow_id: int) -> tuple[Workflow, list[Work]]:
        return from_api(self.client.workflow(workflow_id))

    def recent(self, limit: int) -> list[WorkflowLine]:
        pages = self.client.iter_workflows(page_size=min(limit, 500))
        return list(itertools.islice(pages, limit))

    def failed_jobs(self, workflow_id: int, limit: int) -> list[FailedJob]:
        page = self.client.jobs(workflow_id, status=[JobStatus.FAILED], limit=limit)
        return [FailedJob(j.id, j.work, j.name, j.attempt, j.error) for j in page.items]

    def work_list(self, workflow_id: int) -> list[tuple[int, str, int]]:
        return [(w.id, w.name, w.iteration) for w in self.client.works(workflow_id)]

    def job_lines(
        self, workflow_id: int, *, status: Sequence[str], work_id: int | None, page: int
    ) -> Iterator[tuple[int | None, JobLine]]:
        pages = self.client.iter_jobs(workflow_id, status=status, work_id=work_id, page_size=page)
        for j in pages:
            yield j.work_id or 0, JobLine.of(j, j.work, 0)

    def graph(self, workflow_id: int) -> TaskGraph:
        from orchid.graph import TaskGraph

        return TaskGraph.from_json(self.client.graph(workflow_id))

    def studies(self, workflow_id: int) -> list[dict[str, Any]]:
        return [s.model_dump() for s in self.client.hpo.studies(workflow_id)]

    def study_view(self, workflow_id: int, work: str | None) -> dict[str, Any]:
        return self.client.hpo.study_of(workflow_id, work).model_dump()

    def next_points(
        self, workflow_id: int, work: str | None, *, n: int, segment: str | None
    ) -> tuple[str, list[tuple[int, str, Any]]]:
        sid = self.client.hpo.study_of(workflow_id, work).id
        got = self.client.hpo.next(sid, n=n, segment=segment)
        return got.study_status, [(t.id, t.segment, t.params) for t in got.trials]

    def report(
        self,
        trial: int,
        *,
        value: float | None,
        values: list[float] | None,
        step: int | None,
        failed: str | None,
    ) -> tuple[str, bool]:
        out = self.client.hpo.report(trial, value=value, values=values, step=step, failed=failed)
        return out.status, out.prune

    def watcher(self, workflow_id: int) -> Callable[[], None]:
        """Listens to the workflow's event stream from now on; what stops the stream
        (but its end) is raised by the function returned."""
        changed = threading.Event()
        failure: list[BaseException] = []
        client = self.client

        def listen() -> None:
            try:
                for _ in client.events(workflow_id):
                    changed.set()
            except BaseException as exc:  # handed to the caller's thread
                failure.append(exc)
            finally:
                changed.set()

        def wait() -> None:
            time.sleep(MIN_INTERVAL)  # let a burst of events collect
            changed.wait(MAX_INTERVAL)
            changed.clear()
            if failure:
                raise failure[0]

        threading.Thread(target=listen, name=f"events-{workflow_id}", daemon=True).start()
        return wait

    def submit_file(
        self, path: Path, params: Mapping[str, Any], share_group: str | None = None
    ) -> int:
        return self.client.submit_file(path, params, share_group=share_group).id

    def act(self, workflow_id: int, action: Action) -> None:
        self.client.act(workflow_id, action)

    def agents_alive(self) -> bool:
        return bool(self.client.health().agents)

    def logs(self, job_id: int, stream: str) -> Iterator[bytes]:
        return self.client.iter_logs(job_id, stream="stderr" if stream == "stderr" else "stdout")

    # --- Function-as-a-Task ---------------------------------------------------------------

    def put_blob(self, data: bytes) -> str:
        return self.client.cache.ensure(data)

    def get_blob(self, sha256: str) -> bytes:
        return self.client.cache.get(sha256)

    def find_workflow(self, name: str, key: str) -> tuple[int, str] | None:
        # the caller's own: a group member's workflow of the same name and arguments is theirs
        me = self.client.whoami().user
        for wf in self.client.iter_workflows(name=name, owner=me):
            fat = wf.params.get("fat")
            if isinstance(fat, dict) and fat.get("key") == key:
                return wf.id, wf.status
        return None

    def submit(self, template: Mapping[str, Any], *, base_dir: Path | None = None) -> int:
        return self.client.submit(template).id

    def study(self, workflow_id: int) -> tuple[Mapping[str, Any], list[dict[str, Any]]]:
        first, *_ = self.client.hpo.studies(workflow_id)
        trials = [
            {
                "number": t.number,
                "segment": t.segment,
                "status": t.status,
                "params": dict(t.params),
                "values": t.values,
                "result": t.result,
            }
            for t in self.client.hpo.iter_trials(first.id)
        ]
        return first.summary, trials

    def add_work(self, workflow_id: int, spec: Mapping[str, Any]) -> tuple[int, bool]:
        added = self.client.add_work(workflow_id, spec)
        return added.work_id, added.changed

    def close(self, workflow_id: int, error: str | None) -> None:
        self.client.close_workflow(workflow_id, error)

    def workflow_status(self, workflow_id: int) -> tuple[str, str]:
        wf = self.client.workflow(workflow_id)
        return wf.status, wf.message

    def works(self, workflow_id: int) -> list[WorkRow]:
        return [WorkRow(w.id, w.name, w.status) for w in self.client.works(workflow_id)]

    def finished_jobs(self, workflow_id: int, work_id: int, skip: Collection[int]) -> list[JobRow]:
        return [
            JobRow(j.id, j.name, j.status, j.result, j.error, None)
            for j in self.client.iter_jobs(workflow_id, status=ENDED, work_id=work_id)
            if j.id not in skip
        ]

    def reports(self, workflow_id: int, after: int) -> tuple[list[dict[str, Any]], int]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.client.messages(workflow_id, after=after, kind=REPORT_KIND, limit=1000)
            for m in page.items:
                after = m.id
                if isinstance(m.body, dict):
                    out.append(m.body)
            if page.next_cursor is None:
                return out, after

    def traceback(self, job: JobRow) -> str:
        try:
            text = self.client.logs(job.id, stream="stderr", start=-256 * 1024)
        except ClientError:
            return ""
        return extract_traceback(text.decode("utf-8", errors="replace"))

    def wait(self, workflow_id: int, seconds: float) -> None:
        self._changes(workflow_id).wait(seconds)
        self._changes(workflow_id).clear()

    def _changes(self, workflow_id: int) -> threading.Event:
        """Set whenever the workflow's event stream says something changed."""
        with self._lock:
            event = self._changed.get(workflow_id)
            if event is not None:
                return event
            event = self._changed[workflow_id] = threading.Event()

        def follow() -> None:
            try:
                for _ in self.client.events(workflow_id):
                    event.set()
            except Exception as exc:  # the futures poll on; the stream only wakes them
                log.debug("workflow %s: event stream stopped: %s", workflow_id, exc)
            finally:
                event.set()

        threading.Thread(target=follow, name=f"orchid-events-{workflow_id}", daemon=True).start()
        return event

    def job_env(self) -> dict[str, str]:
        return {"ORCHID_URL": self.client.url}


def from_api(detail: WorkflowDetail) -> tuple[Workflow, list[Work]]:
    """The read models the views draw, from the API's description of a workflow.

    pydantic validates the wire models into the core dataclasses by field name (statuses
    into their enums), so a field both have needs nothing here; only the two names that
    differ are given: a work's ``workflow_id`` and its job count.
    """
    works = [{**w.model_dump(), "workflow_id": detail.id, "n_jobs": w.jobs} for w in detail.works]
    try:
        return _READ.validate_python((detail.model_dump(exclude={"works"}), works))
    except ValidationError as exc:
        from orchid.client.errors import ServerError

        problem = exc.errors()[0]
        loc = problem["loc"]  # (0, field...) for the workflow, (1, index, field...) for works
        where = ".".join(str(p) for p in (("works", *loc[1:]) if loc[0] == 1 else loc[1:]))
        raise ServerError(
            f"the server sent a workflow this client cannot read ({where}: {problem['msg']}): "
            "is the client older than the server?"
        ) from None


_READ = TypeAdapter(tuple[Workflow, list[Work]])
