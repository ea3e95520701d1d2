"""The embedded engine as a :class:`~orchid.backend.base.Backend`: this process's
database, cache and, if asked, agents.

The CLI reads and writes the database (agents run elsewhere: ``orchid agents``, or those of
``orchid run``). For Function-as-a-Task in the caller, the agents (clerk, transformer,
carrier, trigger and the local executor) run in a thread while a workflow function runs
(``run_agents``: an :class:`~orchid.engine.inprocess.Engine`); in a job (a server-side
workflow function), the caller's agents run everything: the job only reads and writes the
database. Blobs are the store's cache, ``$ORCHID_HOME/cache``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchid.backend.base import (
    FailedJob,
    JobLine,
    JobRow,
    StopsOnExit,
    WorkflowLine,
    WorkRow,
    extract_traceback,
)
from orchid.core.model import ALIVE_S, Work, Workflow
from orchid.core.states import TERMINAL_JOB, Action, JobStatus
from orchid.engine import extend
from orchid.engine.hpo_ops import Report, Studies
from orchid.engine.inprocess import Engine
from orchid.engine.submit import load_template, submit
from orchid.errors import Archived, InvalidInput
from orchid.safefiles import no_log, open_log
from orchid.settings import Settings
from orchid.store import agents, cache, commands, jobs, studies, workflows, works
from orchid.store import trials as trial_rows
from orchid.store.cache import Blobs
from orchid.store.db import Database

if TYPE_CHECKING:
    from orchid.graph import TaskGraph

log = logging.getLogger(__name__)
POLL_S = 0.1  # agents' poll interval: a job's additions wake no bus in this process
FOLLOW_S = 0.3  # how often a view re-reads a workflow it follows


class EmbeddedBackend(StopsOnExit):
    """Over ``db`` (default: that of the settings, opened here); agents only with
    ``run_agents`` (Function-as-a-Task in the caller)."""

    remote = False

    def __init__(
        self, settings: Settings, *, db: Database | None = None, run_agents: bool = False
    ) -> None:
        if run_agents and settings.poll_interval > POLL_S:
            settings = settings.replace(poll_interval=POLL_S)
        self.settings = settings
        self.location = settings.db_url
        self.run_agents = run_agents
        self.db = db or Database(settings.db_url, lease_seconds=settings.lease_seconds)
        self.blobs = Blobs(settings.home / "cache")
        self._engine: Engine | None = None

    # --- life -----------------------------------------------------------------------------

    def start(self) -> None:
        self.db.ensure_schema()
        if not self.run_agents or self._engine is not None:
            return
        self._engine = Engine(self.settings, self.db, name="orchid-fat-agents")
        self._engine.start(on_failure=lambda _: log.exception("the embedded agents stopped"))

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        self.db.dispose()

    def _wake(self) -> None:
        if self._engine is not None:
            self._engine.wake()

    # --- views ----------------------------------------------------------------------------

    def snapshot(self, workflow_id: int) -> tuple[Workflow, list[Work]]:
        with self.db.engine.connect() as conn:
            return workflows.get(conn, workflow_id), works.list_for(conn, workflow_id)

    def recent(self, limit: int) -> list[WorkflowLine]:
        with self.db.engine.connect() as conn:
            return list(workflows.list_recent(conn, limit=limit))

    def failed_jobs(self, workflow_id: int, limit: int) -> list[FailedJob]:
        with self.db.engine.connect() as conn:
            bad = jobs.list_for(conn, workflow_id, status=[JobStatus.FAILED], limit=limit)
        return [FailedJob(j.id, j.work_name, j.name, j.attempt, j.error) for j in bad]

    def work_list(self, workflow_id: int) -> list[tuple[int, str, int]]:
        with self.db.engine.connect() as conn:
            workflows.get(conn, workflow_id)  # NotFound: says which workflows exist
            return [(w.id, w.name, w.iteration) for w in works.list_for(conn, workflow_id, False)]

    def job_lines(
        self, workflow_id: int, *, status: Sequence[str], work_id: int | None, page: int
    ) -> Iterator[tuple[int | None, JobLine]]:
        after = 0
        while True:
            with self.db.engine.connect() as conn:
                rows = jobs.list_for(
                    conn, workflow_id, status=status, work_id=work_id, after_id=after, limit=page
                )
            for j in rows:
                yield j.work_id, JobLine.of(j, j.work_name, 0)
            if len(rows) < page:
                return
            after = rows[-1].id

    def graph(self, workflow_id: int) -> TaskGraph:
        from orchid.graph.load import load

        with self.db.engine.connect() as conn:
            if workflows.get(conn, workflow_id).archived_at is not None:
                raise Archived(
                    f"workflow {workflow_id} is archived: its graph is in the archive; "
                    f"`orchid restore {workflow_id}` brings it back"
                )
            return load(conn, workflow_id)

    def studies(self, workflow_id: int) -> list[dict[str, Any]]:
        ops = Studies()
        with self.db.engine.connect() as conn:
            return [ops.view(conn, s) for s, _, _ in studies.of_workflow(conn, workflow_id)]

    def study_view(self, workflow_id: int, work: str | None) -> dict[str, Any]:
        found = [v for v in self.studies(workflow_id) if work is None or v["work"] == work]
        if not found or len({v["work"] for v in found}) > 1:
            raise InvalidInput(
                f"workflow {workflow_id} has {'no' if not found else 'several'} hpo works"
                + ("" if not found else "; name one with --work")
            )
        return max(found, key=lambda v: v["iteration"])

    def next_points(
        self, workflow_id: int, work: str | None, *, n: int, segment: str | None
    ) -> tuple[str, list[tuple[int, str, Any]]]:
        view = self.study_view(workflow_id, work)
        with self.db.begin() as conn:
            status, rows = Studies().next_points(
                conn, view["id"], n=n, segment=segment, worker=self.settings.owner, now=time.time()
            )
        return status, [(t.id, t.segment, t.params) for t in rows]

    def report(
        self,
        trial: int,
        *,
        value: float | None,
        values: list[float] | None,
        step: int | None,
        failed: str | None,
    ) -> tuple[str, bool]:
        with self.db.begin() as conn:
            return Studies().report(
                conn, trial, Report(step, value, values, None, failed), time.time()
            )

    def watcher(self, workflow_id: int) -> Callable[[], None]:
        return lambda: time.sleep(FOLLOW_S)

    def submit_file(
        self,
        path: Path,
        params: Mapping[str, Any],
        share_group: str | None = None,
        priority: int | None = None,
    ) -> int:
        raw, base = load_template(path)
        return submit(
            self.db,
            raw,
            base_dir=base,
            params=dict(params),
            owner=self.settings.owner,
            now=time.time(),
            share_group=share_group,
            priority=priority,
            executors=self.settings.executor_names,
            limits=self.settings.limits,
        )

    def act(self, workflow_id: int, action: Action) -> None:
        with self.db.begin() as conn:
            workflows.get(conn, workflow_id)
            commands.add(conn, workflow_id, action, time.time())

    def agents_alive(self) -> bool:
        with self.db.engine.connect() as conn:
            return bool(agents.alive(conn, since=time.time() - ALIVE_S))

    def logs(self, job_id: int, stream: str) -> Iterator[bytes]:
        with self.db.engine.connect() as conn:
            job = jobs.get(conn, job_id)
        if not job.log_uri:
            raise InvalidInput(no_log(job_id, job.status))
        with open_log(self.settings.log_dir, job_id, job.log_uri, stream) as fh:
            while chunk := fh.read(65536):
                yield chunk

    # --- blobs ----------------------------------------------------------------------------

    def put_blob(self, data: bytes) -> str:
        with self.blobs.receive() as incoming:
            incoming.write(data)
            sha = incoming.hexdigest()
            with self.db.begin() as conn:
                cache.add(
                    conn, self.blobs, sha, incoming, owner=self.settings.owner, now=time.time()
                )
        return sha

    def get_blob(self, sha256: str) -> bytes:
        handle = self.blobs.open(sha256)
        if handle is None:
            from orchid.errors import NotFound

            raise NotFound(f"the cache of {self.settings.home} has no object {sha256}")
        with handle:
            return handle.read()

    # --- workflows ------------------------------------------------------------------------

    def find_workflow(self, name: str, key: str) -> tuple[int, str] | None:
        with self.db.engine.connect() as conn:
            found = workflows.list_recent(conn, owner=self.settings.owner, name=name, limit=500)
        for wf in found:
            fat = wf.params.get("fat")
            if isinstance(fat, dict) and fat.get("key") == key:
                return wf.id, str(wf.status)
        return None

    def submit(self, template: Mapping[str, Any], *, base_dir: Path | None = None) -> int:
        wf = submit(
            self.db,
            dict(template),
            base_dir=base_dir,
            owner=self.settings.owner,
            now=time.time(),
            limits=self.settings.limits,
        )
        self._wake()
        return wf

    def study(self, workflow_id: int) -> tuple[Mapping[str, Any], list[dict[str, Any]]]:
        with self.db.engine.connect() as conn:
            (study, _, _), *_ = studies.of_workflow(conn, workflow_id)
            trials = [
                {
                    "number": t.number,
                    "segment": t.segment,
                    "status": t.status,
                    "params": dict(t.params),
                    "values": t.values,
                    "result": t.result,
                }
                for t in trial_rows.trials_of(conn, study.id)
            ]
        return study.summary or {}, trials

    def add_work(self, workflow_id: int, spec: Mapping[str, Any]) -> tuple[int, bool]:
        added = extend.add_work(
            self.db, workflow_id, spec, time.time(), self.settings.executor_names
        )
        self._wake()
        return added.work_id, added.changed

    def close(self, workflow_id: int, error: str | None) -> None:
        extend.close(self.db, workflow_id, error, time.time())
        self._wake()

    def workflow_status(self, workflow_id: int) -> tuple[str, str]:
        with self.db.engine.connect() as conn:
            wf = workflows.get(conn, workflow_id)
        return str(wf.status), wf.message

    def works(self, workflow_id: int) -> list[WorkRow]:
        with self.db.engine.connect() as conn:
            rows = works.list_for(conn, workflow_id, with_counts=False)
        return [WorkRow(w.id, w.name, str(w.status)) for w in rows]

    def finished_jobs(self, workflow_id: int, work_id: int, skip: Collection[int]) -> list[JobRow]:
        ended = [str(s) for s in TERMINAL_JOB]
        with self.db.engine.connect() as conn:
            ids = jobs.ended_ids(conn, work_id)
            new = [i for i in ids if i not in skip]
            rows = jobs.get_many(conn, new) if new else []
        return [
            JobRow(j.id, j.name, str(j.status), j.result, j.error, j.log_uri)
            for j in rows
            if str(j.status) in ended
        ]

    def reports(self, workflow_id: int, after: int) -> tuple[list[dict[str, Any]], int]:
        return [], after  # jobs here report through the executor's result file

    def traceback(self, job: JobRow) -> str:
        if not job.log_uri:
            return ""
        try:
            text = Path(job.log_uri).with_suffix(".err").read_text(errors="replace")
        except OSError:
            return ""
        return extract_traceback(text[-256 * 1024 :])

    def wait(self, workflow_id: int, seconds: float) -> None:
        if self._engine is not None:
            self._engine.raise_failure()
        time.sleep(seconds)

    def job_env(self) -> dict[str, str]:
        return {
            "ORCHID_URL": "",  # not the caller's server, if its environment names one
            "ORCHID_HOME": str(self.settings.home),
            "ORCHID_DB_URL": self.settings.db_url,
        }
