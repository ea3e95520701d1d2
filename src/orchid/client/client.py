"""``Client``: every endpoint of Orchid's REST API as a typed method.

::

    from orchid.client import Client

    with Client.from_config() as orchid:            # ORCHID_URL/ORCHID_TOKEN or the config file
        wf = orchid.submit_file(Path("workflow.yaml"), {"n": 3})
        for event in orchid.events(wf.id):           # until the workflow ends
            print(event.kind)
        print(orchid.workflow(wf.id).status)
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import httpx

from orchid import __version__
from orchid.client import submission
from orchid.client._http import Http, Retry, decode, read_chunks
from orchid.client.cache import CacheApi
from orchid.client.config import ClientConfig
from orchid.client.errors import ClientError, ServerError, Unreachable
from orchid.client.hpo import HpoApi
from orchid.client.sse import END, Event, parse
from orchid.core.states import Action
from orchid.errors import ConfigError
from orchid.wire import (
    AddedWorkOut,
    CollectionOut,
    CommandOut,
    FileOut,
    FilePage,
    Health,
    JobOut,
    JobPage,
    MessageOut,
    MessagePage,
    WhoAmI,
    WorkflowDetail,
    WorkflowOut,
    WorkflowPage,
    WorkOut,
)

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
LogStream = Literal["stdout", "stderr"]
EVENTS_READ_TIMEOUT_S = 60.0  # the server sends a keep-alive every 15 s
SUBMIT_READ_TIMEOUT_S = 900.0  # a 10^6-job graph is checked and written before the answer
STREAM_MIN_LIFE_S = 30.0  # an event stream open this long counts as working, events or not


class Client:
    """A connection to one Orchid server, as one user (the token's).

    Safe to share between threads. Failed connections are retried (``retry``), reads also
    when the connection drops; a submission or command that reached the server is never
    sent twice. Errors are :class:`orchid.client.errors.ClientError` subclasses.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        retry: Retry | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = ClientConfig(url).url
        if not base.endswith(API_PREFIX):
            base += API_PREFIX
        headers = {"User-Agent": f"orchid-client/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
            host = httpx.URL(base).host
            if base.startswith("http://") and host != "localhost" and not _loopback(host):
                log.warning(
                    "sending a token over plain HTTP to %s: use https:// beyond this host", host
                )
        self.url = base
        self._http = Http(
            httpx.Client(
                base_url=base,
                headers=headers,
                timeout=httpx.Timeout(timeout, connect=connect_timeout),
                transport=transport,
                follow_redirects=False,
            ),
            retry or Retry(),
            sleep,
        )
        self.cache = CacheApi(self._http)
        """The server's cache of your payloads, by sha256."""
        self.hpo = HpoApi(self._http)
        """Studies: fetch points (pull mode), report losses, read the best trials."""

    @classmethod
    def from_config(cls, config: ClientConfig | None = None, **options: Any) -> Client:
        """A client for ``config``, by default the one ``ClientConfig.load()`` finds."""
        config = config or ClientConfig.load()
        if config is None:
            raise ConfigError(
                "no Orchid server configured: set ORCHID_URL (and ORCHID_TOKEN), "
                "or start one with `orchid up`"
            )
        return cls(config.url, config.token, **options)

    def close(self) -> None:
        self._http.client.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- system ---------------------------------------------------------------------------

    def ping(self) -> str:
        """The server's version; needs no token (a liveness check)."""
        body = decode(self._http.request("GET", "/ping"))
        if not isinstance(body, dict) or body.get("ping") != "pong":
            raise ServerError(f"{self.url}/ping did not answer pong: is this an Orchid server?")
        return str(body.get("version", ""))

    def health(self) -> Health:
        """The database answers, and which agents were seen lately."""
        return Health.model_validate(self._get("/health"))

    def whoami(self) -> WhoAmI:
        """The caller as the server authenticated it (user, groups, admin)."""
        return WhoAmI.model_validate(self._get("/whoami"))

    # --- workflows ------------------------------------------------------------------------

    def submit(
        self,
        template: Mapping[str, Any] | str,
        params: Mapping[str, Any] | None = None,
        *,
        share_group: str | None = None,
        job_lines: Iterable[str] | None = None,
    ) -> WorkflowOut:
        """Submit a template (a mapping, or its YAML/JSON text); ``job_lines`` are the JSON
        lines of its ``jobs_file``. The server validates everything before writing anything.
        ``share_group``: a group of yours whose members may see and steer it too."""
        return self._submit(submission.make(template, params, share_group, job_lines))

    def submit_file(
        self,
        path: Path,
        params: Mapping[str, Any] | None = None,
        *,
        share_group: str | None = None,
        priority: int | None = None,
    ) -> WorkflowOut:
        """Submit a template file, with the lines of its ``jobs_file`` if it names one;
        ``priority`` overrides the template's (among your workflows waiting for slots)."""
        sub = submission.from_file(path, params, share_group)
        if priority is not None:
            sub = submission.Submission({**sub.header, "priority": priority}, sub.job_lines)
        return self._submit(sub)

    def _submit(self, sub: submission.Submission) -> WorkflowOut:
        head = sub.header_json()
        usual = self._http.client.timeout
        timeout = httpx.Timeout(
            max(usual.read or 0.0, SUBMIT_READ_TIMEOUT_S), connect=usual.connect
        )
        if sub.job_lines is None:
            response = self._http.request(
                "POST",
                "/workflows",
                content=head,
                headers={"Content-Type": "application/json"},
                timeout=timeout,
            )
        else:
            lines = sub.job_lines
            response = self._http.request(
                "POST",
                "/workflows",
                body=lambda: submission.gzip_lines(head, lines),
                headers={"Content-Type": submission.NDJSON, "Content-Encoding": "gzip"},
                timeout=timeout,
            )
        return WorkflowOut.model_validate(decode(response))

    def workflows(
        self,
        *,
        status: Sequence[str] | None = None,
        owner: str | None = None,
        name: str | None = None,
        since: float | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> WorkflowPage:
        """One page of the workflows the caller may see, newest first; pass the page's
        ``next_cursor`` as ``cursor`` for the next one (None: this was the last)."""
        query = {
            "status": list(status or []),
            "owner": owner,
            "name": name,
            "since": since,
            "cursor": cursor,
            "limit": limit,
        }
        return WorkflowPage.model_validate(self._get("/workflows", query))

    def iter_workflows(
        self,
        *,
        status: Sequence[str] | None = None,
        owner: str | None = None,
        name: str | None = None,
        since: float | None = None,
        page_size: int = 200,
    ) -> Iterator[WorkflowOut]:
        """Every workflow the caller may see, newest first, fetched a page at a time."""
        cursor: str | None = None
        while True:
            page = self.workflows(
                status=status, owner=owner, name=name, since=since, cursor=cursor, limit=page_size
            )
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def workflow(self, workflow_id: int) -> WorkflowDetail:
        """One workflow with its works and their job counts by status."""
        return WorkflowDetail.model_validate(self._get(f"/workflows/{workflow_id}"))

    def works(self, workflow_id: int) -> list[WorkOut]:
        """A workflow's works (a loop's works once per iteration)."""
        body = self._get(f"/workflows/{workflow_id}/works")
        return [WorkOut.model_validate(w) for w in body]

    def graph(self, workflow_id: int) -> dict[str, Any]:
        """The task-level graph (``orchid.graph.TaskGraph.from_json`` reads it)."""
        body: dict[str, Any] = self._get(f"/workflows/{workflow_id}/graph")
        return body

    def act(self, workflow_id: int, action: Action) -> CommandOut:
        """Queue a command; the agents apply it (see :meth:`abort` and the others)."""
        response = self._http.request("POST", f"/workflows/{workflow_id}/{action}")
        return CommandOut.model_validate(decode(response))

    def abort(self, workflow_id: int) -> CommandOut:
        """Cancel: nothing new starts, running jobs are stopped."""
        return self.act(workflow_id, "abort")

    def suspend(self, workflow_id: int) -> CommandOut:
        """Pause: running jobs finish, no new job starts until :meth:`resume`."""
        return self.act(workflow_id, "suspend")

    def resume(self, workflow_id: int) -> CommandOut:
        return self.act(workflow_id, "resume")

    def retry(self, workflow_id: int) -> CommandOut:
        """Run the failed jobs again (and what was skipped because of them)."""
        return self.act(workflow_id, "retry")

    def finish(self, workflow_id: int) -> CommandOut:
        """Start nothing new; what runs now runs to its end."""
        return self.act(workflow_id, "finish")

    def add_work(self, workflow_id: int, work: Mapping[str, Any]) -> AddedWorkOut:
        """Add a work (a template's ``works`` item) to a workflow that has not ended; one of
        that name that is there already is returned as it is (Function-as-a-Task)."""
        data = submission.to_json({"work": dict(work)}, "the work")
        response = self._http.request(
            "POST",
            f"/workflows/{workflow_id}/works",
            content=data,
            headers={"Content-Type": "application/json"},
            idempotent=True,
        )
        return AddedWorkOut.model_validate(decode(response))

    def close_workflow(self, workflow_id: int, error: str | None = None) -> WorkflowOut:
        """No more works will be added to this open workflow; ``error``: it failed, why."""
        data = submission.to_json({"error": error}, "the close")
        response = self._http.request(
            "POST",
            f"/workflows/{workflow_id}/close",
            content=data,
            headers={"Content-Type": "application/json"},
            idempotent=True,
        )
        return WorkflowOut.model_validate(decode(response))

    # --- jobs -----------------------------------------------------------------------------

    def jobs(
        self,
        workflow_id: int,
        *,
        status: Sequence[str] | None = None,
        work_id: int | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> JobPage:
        """One page of a workflow's jobs in id order, optionally of some statuses or work."""
        query = {"status": list(status or []), "work": work_id, "cursor": cursor, "limit": limit}
        return JobPage.model_validate(self._get(f"/workflows/{workflow_id}/jobs", query))

    def iter_jobs(
        self,
        workflow_id: int,
        *,
        status: Sequence[str] | None = None,
        work_id: int | None = None,
        page_size: int = 1000,
    ) -> Iterator[JobOut]:
        """Every job of a workflow (of some statuses, of a work), a page at a time: fine for
        10^6 jobs."""
        cursor: str | None = None
        while True:
            page = self.jobs(
                workflow_id, status=status, work_id=work_id, cursor=cursor, limit=page_size
            )
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def job(self, job_id: int) -> JobOut:
        return JobOut.model_validate(self._get(f"/jobs/{job_id}"))

    def logs(
        self,
        job_id: int,
        *,
        stream: LogStream = "stdout",
        start: int | None = None,
        end: int | None = None,
    ) -> bytes:
        """A job's log (latest attempt), or the bytes ``[start:end]`` of it, as in slicing:
        ``start=-1000`` is the last 1000 bytes. A range past the end gives ``b""``."""
        return b"".join(self.iter_logs(job_id, stream=stream, start=start, end=end))

    def iter_logs(
        self,
        job_id: int,
        *,
        stream: LogStream = "stdout",
        start: int | None = None,
        end: int | None = None,
    ) -> Iterator[bytes]:
        """Like :meth:`logs`, in chunks as they arrive (for logs too big to hold)."""
        header = _byte_range(start, end)
        if header == "":
            return
        headers = {"Accept": "text/plain"}
        if header is not None:
            headers["Range"] = header
        response = self._http.request(
            "GET",
            f"/jobs/{job_id}/logs",
            params={"stream": stream},
            headers=headers,
            stream=True,
            ok=frozenset({416}),
        )
        try:
            if response.status_code == 416:
                return
            yield from read_chunks(response)
        finally:
            response.close()

    # --- messages and data ----------------------------------------------------------------

    def post_message(self, workflow_id: int, kind: str, body: Any) -> MessageOut:
        """Post a message (``kind`` like ``result``, ``body`` any JSON up to 1 MiB) to a
        workflow you may steer; its watchers see a ``message`` event."""
        data = submission.to_json({"kind": kind, "body": body}, "the message")
        response = self._http.request(
            "POST",
            f"/workflows/{workflow_id}/messages",
            content=data,
            headers={"Content-Type": "application/json"},
        )
        return MessageOut.model_validate(decode(response))

    def messages(
        self, workflow_id: int, *, after: int = 0, kind: str | None = None, limit: int = 100
    ) -> MessagePage:
        """A page of a workflow's messages after message id ``after``, oldest first."""
        query = {"after": after, "kind": kind, "limit": limit}
        return MessagePage.model_validate(self._get(f"/workflows/{workflow_id}/messages", query))

    def iter_messages(
        self, workflow_id: int, *, after: int = 0, kind: str | None = None, page_size: int = 100
    ) -> Iterator[MessageOut]:
        """Every message after ``after`` there is now (a poller remembers the last id)."""
        while True:
            page = self.messages(workflow_id, after=after, kind=kind, limit=page_size)
            yield from page.items
            if page.next_cursor is None or not page.items:
                return
            after = page.items[-1].id

    def collections(self, workflow_id: int) -> list[CollectionOut]:
        """The workflow's collections (datasets), with file counts by status."""
        body = self._get(f"/workflows/{workflow_id}/collections")
        return [CollectionOut.model_validate(c) for c in body]

    def files(
        self,
        workflow_id: int,
        collection_id: int,
        *,
        status: Sequence[str] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> FilePage:
        """One page of a collection's files, in id order, optionally of some statuses."""
        query = {"status": list(status or []), "cursor": cursor, "limit": limit}
        path = f"/workflows/{workflow_id}/collections/{collection_id}/files"
        return FilePage.model_validate(self._get(path, query))

    def iter_files(
        self,
        workflow_id: int,
        collection_id: int,
        *,
        status: Sequence[str] | None = None,
        page_size: int = 1000,
    ) -> Iterator[FileOut]:
        cursor: str | None = None
        while True:
            page = self.files(
                workflow_id, collection_id, status=status, cursor=cursor, limit=page_size
            )
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # --- events ---------------------------------------------------------------------------

    def events(self, workflow_id: int, *, after: int = 0) -> Iterator[Event]:
        """The workflow's changes as they happen, from event ``after`` on; the iterator ends
        when the workflow has ended and every event was delivered (the server's ``end``).

        A dropped stream is picked up where it stopped (bounded retries, like every read).
        """
        last, failures = after, 0
        timeout = httpx.Timeout(EVENTS_READ_TIMEOUT_S, connect=self._http.client.timeout.connect)
        while True:
            opened, delivered = time.monotonic(), False
            response = self._http.request(
                "GET",
                f"/workflows/{workflow_id}/events",
                params={"after": last},
                headers={"Accept": "text/event-stream"},
                stream=True,
                timeout=timeout,
            )
            try:
                for event in parse(response.iter_lines()):
                    if event.kind == END:
                        return
                    if event.id is not None:
                        last = event.id
                    delivered = True
                    yield event
                reason = "the server closed it"
            except httpx.TransportError as exc:
                reason = str(exc) or type(exc).__name__
            finally:
                response.close()
            # a stream that delivered nothing and did not last is a failure: give up on a
            # server that keeps closing it, but follow one that a proxy cuts now and then
            worked = delivered or time.monotonic() - opened >= STREAM_MIN_LIFE_S
            failures = 1 if worked else failures + 1
            if failures >= self._http.retry.attempts:
                raise Unreachable(
                    f"lost the event stream of workflow {workflow_id} from {self.url} "
                    f"{failures} times in a row: {reason}"
                )
            self._http.sleep(self._http.retry.delay(failures))

    # --- plumbing -------------------------------------------------------------------------

    def _get(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        return decode(self._http.request("GET", path, params=query))


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _byte_range(start: int | None, end: int | None) -> str | None:
    """The ``Range`` header for ``[start:end]``: None for everything, "" for nothing."""
    if start is None and end is None:
        return None
    if start is not None and start < 0:
        if end is not None:
            raise ValueError("a range from the end (negative start) cannot have an end")
        return f"bytes=-{-start}"
    first = start or 0
    if end is None:
        return f"bytes={first}-"
    if end < 0:
        raise ValueError("end counts bytes from the start of the log; it cannot be negative")
    if end <= first:
        return ""
    return f"bytes={first}-{end - 1}"


__all__ = ["Action", "Client", "ClientError", "LogStream"]
