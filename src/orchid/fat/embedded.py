"""Function-as-a-Task on the embedded engine: this process's database, cache and agents.

In the caller, the agents (clerk, transformer, carrier, trigger and the local executor) run
in a thread while a workflow function runs, as ``orchid run`` does. In a job (a server-side
workflow function), the caller's agents run everything: the job only reads and writes the
database. Blobs are the store's cache, ``$ORCHID_HOME/cache``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from orchid.core.states import TERMINAL_JOB
from orchid.engine import extend
from orchid.engine.runner import Runner, make_runner
from orchid.engine.submit import submit
from orchid.executors.base import Executor
from orchid.fat.backend import JobRow, WorkRow, extract_traceback
from orchid.settings import Settings
from orchid.store import cache, jobs, workflows, works
from orchid.store.cache import Blobs
from orchid.store.db import Database

log = logging.getLogger(__name__)
POLL_S = 0.1  # agents' poll interval: a job's additions wake no bus in this process


class EmbeddedBackend:
    remote = False

    def __init__(self, settings: Settings, *, run_agents: bool = True) -> None:
        if settings.poll_interval > POLL_S:
            settings = settings.replace(poll_interval=POLL_S)
        self.settings = settings
        self.run_agents = run_agents
        self.db = Database(settings.db_url, lease_seconds=settings.lease_seconds)
        self.blobs = Blobs(settings.home / "cache")
        self._runner: Runner | None = None
        self._executor: Executor | None = None
        self._thread: threading.Thread | None = None
        self._failure: list[BaseException] = []

    # --- life -----------------------------------------------------------------------------

    def start(self) -> None:
        self.db.ensure_schema()
        if not self.run_agents or self._runner is not None:
            return
        self._runner, self._executor = make_runner(self.settings, self.db)
        runner = self._runner

        def loop() -> None:
            try:
                runner.run()
            except BaseException as exc:  # raised in the caller's thread by wait()
                log.exception("the embedded agents stopped")
                self._failure.append(exc)

        self._thread = threading.Thread(target=loop, name="orchid-fat-agents", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()
            if self._thread is not None:
                self._thread.join(30)
            if self._executor is not None:
                self._executor.close()
            self._runner.close()
            self._runner = None
        self.db.dispose()

    def _wake(self) -> None:
        if self._runner is not None:
            self._runner.bus.notify("workflows")

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

    def submit(self, template: Mapping[str, Any]) -> int:
        wf = submit(
            self.db,
            dict(template),
            base_dir=None,
            owner=self.settings.owner,
            now=time.time(),
            limits=self.settings.limits,
        )
        self._wake()
        return wf

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
        if self._failure:
            raise self._failure[0]
        time.sleep(seconds)

    def job_env(self) -> dict[str, str]:
        return {
            "ORCHID_URL": "",  # not the caller's server, if its environment names one
            "ORCHID_HOME": str(self.settings.home),
            "ORCHID_DB_URL": self.settings.db_url,
        }
