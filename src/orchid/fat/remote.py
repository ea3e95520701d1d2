"""Function-as-a-Task against an Orchid server, through :class:`orchid.client.Client`.

Jobs report over REST (``fat.report`` messages, which carry results and tracebacks as
they come); the workflow's event stream wakes the futures, which read the reports since
the last look, and the ended jobs of works that ended or reported a failure.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping
from typing import Any

from orchid.client import Client
from orchid.client.errors import ClientError
from orchid.fat.backend import REPORT_KIND, JobRow, WorkRow, extract_traceback

log = logging.getLogger(__name__)
ENDED = ["succeeded", "failed", "cancelled", "skipped"]


class RemoteBackend:
    remote = True

    def __init__(self, client: Client) -> None:
        self.client = client
        self._changed: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.client.close()

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

    def submit(self, template: Mapping[str, Any]) -> int:
        return self.client.submit(template).id

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
