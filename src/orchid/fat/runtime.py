"""A workflow function while it runs: the works its task calls add, and their outcomes.

One :class:`Run` per execution of a workflow function (in the caller, or in the job that
runs it on the server side). A task call becomes one work, named after the task and a
digest of what it was called with: the same call made again, by the same function run
again after a restart, finds the work made the first time and reuses what its jobs did.
The :class:`Tracker` follows those works' jobs and resolves the futures.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchid.backend.base import Backend, JobRow
from orchid.fat import codec
from orchid.fat.definitions import Policy
from orchid.fat.errors import TaskFailed

if TYPE_CHECKING:
    from orchid.fat.decorators import Task

TERMINAL_WORK = frozenset({"succeeded", "failed", "partial", "cancelled", "skipped"})
WORKFLOW_WORK = "workflow"  # the work whose job runs a server-side workflow function
JOB_COMMAND = "orchid-job"


@dataclass
class Outcome:
    """How one job ended."""

    job_id: int | None
    ok: bool
    envelope: Any = None
    reason: str = ""
    traceback: str = ""
    order: int = 0  # completion order within its work
    value: Any = None
    decoded: bool = False


class WorkHandle:
    """One work's jobs and their outcomes, by index (the job's name)."""

    def __init__(self, tracker: Tracker | None, work_id: int, name: str, task: str, size: int):
        self.tracker = tracker
        self.work_id = work_id
        self.name = name
        self.task = task
        self.size = size
        self.outcomes: dict[int, Outcome] = {}
        self.tracebacks: dict[int, str] = {}  # job id -> traceback from its report
        self.dirty = False  # a failure was reported: look at the job rows

    def outcome(self, index: int) -> Outcome | None:
        return self.outcomes.get(index)

    def resolve(self, index: int, outcome: Outcome) -> None:
        if index not in self.outcomes and 0 <= index < self.size:
            outcome.order = len(self.outcomes)
            self.outcomes[index] = outcome

    def pending(self) -> bool:
        return len(self.outcomes) < self.size

    def wait(self, indices: Iterable[int], timeout: float | None) -> bool:
        """Whether every job of ``indices`` has ended, waiting up to ``timeout`` seconds."""
        wanted = list(indices)
        if self.tracker is None:
            return all(i in self.outcomes for i in wanted)
        return self.tracker.wait(lambda: all(i in self.outcomes for i in wanted), timeout)

    def wait_all(self, indices: Iterable[int], timeout: float | None) -> None:
        if not self.wait(indices, timeout):
            raise TimeoutError(f"the jobs of {self.task} (work {self.name}) did not end in time")

    def value(self, index: int, timeout: float | None) -> Any:
        if not 0 <= index < self.size:
            raise IndexError(f"{self.task} has {self.size} jobs; there is no job {index}")
        self.wait_all([index], timeout)
        out = self.outcomes[index]
        if not out.ok:
            raise TaskFailed(self.task, out.job_id, out.reason, out.traceback, index=index)
        if not out.decoded:
            get = self.tracker.backend.get_blob if self.tracker is not None else None
            try:
                out.value = codec.decode(out.envelope, get)
            except ValueError as exc:
                raise TaskFailed(
                    self.task, out.job_id, f"its result cannot be read: {exc}", index=index
                ) from None
            out.decoded = True
        return out.value

    def completed(self, timeout: float | None) -> Iterator[int]:
        """Indices in the order their jobs ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        given = 0
        while given < self.size:
            ready = sorted(self.outcomes, key=lambda i: self.outcomes[i].order)[given:]
            for index in ready:
                given += 1
                yield index
            if given >= self.size:
                return
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if left == 0.0 or not self.wait_new(given, left):
                raise TimeoutError(
                    f"the jobs of {self.task} (work {self.name}) did not end in time"
                )

    def wait_new(self, seen: int, timeout: float | None) -> bool:
        if self.tracker is None:
            return len(self.outcomes) > seen
        return self.tracker.wait(lambda: len(self.outcomes) > seen, timeout)


class Tracker:
    """Follows the works of one workflow that futures wait for, and resolves them."""

    def __init__(self, backend: Backend, workflow_id: int) -> None:
        self.backend = backend
        self.workflow_id = workflow_id
        self.handles: dict[int, WorkHandle] = {}
        self._by_name: dict[str, WorkHandle] = {}
        self._cursor = 0
        self._lock = threading.RLock()

    def track(self, handle: WorkHandle) -> WorkHandle:
        with self._lock:
            known = self.handles.get(handle.work_id)
            if known is not None:
                return known
            self.handles[handle.work_id] = handle
            self._by_name[handle.name] = handle
            return handle

    def wait(self, done: Any, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.02
        while True:
            with self._lock:
                if done():
                    return True
                self.refresh()
                if done():
                    return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self.backend.wait(self.workflow_id, delay if left is None else min(delay, left))
            delay = min(delay * 1.5, 1.0)

    def refresh(self) -> None:
        """Take in what the jobs reported, and the ends of jobs whose works need a look."""
        waiting = [h for h in self.handles.values() if h.pending()]
        if not waiting:
            return
        reports, self._cursor = self.backend.reports(self.workflow_id, self._cursor)
        for report in reports:
            self._report(report)
        waiting = [h for h in waiting if h.pending()]
        if not waiting:
            return
        if self.backend.remote:
            status = {w.id: w.status for w in self.backend.works(self.workflow_id)}
            waiting = [h for h in waiting if h.dirty or status.get(h.work_id) in TERMINAL_WORK]
        for handle in waiting:
            handle.dirty = False
            known = {o.job_id for o in handle.outcomes.values() if o.job_id is not None}
            for row in self.backend.finished_jobs(self.workflow_id, handle.work_id, known):
                self._row(handle, row)

    def _report(self, report: Mapping[str, Any]) -> None:
        inner = report.get("body")
        body: Mapping[str, Any] = inner if isinstance(inner, dict) else report
        handle = self._by_name.get(str(body.get("work")))
        if handle is None:
            return
        try:
            index, job_id = int(body["job"]), int(body["job_id"])
        except (KeyError, TypeError, ValueError):
            return
        if body.get("ok"):
            handle.resolve(index, Outcome(job_id, True, body.get("result")))
        else:
            error = body.get("error") or {}
            handle.tracebacks[job_id] = str(error.get("traceback") or "")
            handle.dirty = True

    def _row(self, handle: WorkHandle, row: JobRow) -> None:
        try:
            index = int(row.name)
        except ValueError:
            return
        if row.status == "succeeded":
            if row.result is None:
                handle.resolve(
                    index,
                    Outcome(row.id, False, reason="the job succeeded but sent no result back"),
                )
            else:
                handle.resolve(index, Outcome(row.id, True, row.result))
            return
        reason = row.error or row.status
        if row.status == "failed":
            tb = handle.tracebacks.get(row.id) or self.backend.traceback(row)
        else:
            tb = ""
        handle.resolve(index, Outcome(row.id, False, reason=reason, traceback=tb))


# --- the running workflow function ------------------------------------------------------


class Run:
    """One execution of a workflow function against one workflow."""

    def __init__(self, backend: Backend, workflow_id: int) -> None:
        self.backend = backend
        self.workflow_id = workflow_id
        self.tracker = Tracker(backend, workflow_id)
        self._calls: Counter[str] = Counter()
        self._sources: dict[Any, str] = {}  # packaging.Tree -> sha256
        self._lock = threading.Lock()

    def call(self, task: Task[Any, Any], calls: Sequence[Mapping[str, Any]]) -> WorkHandle:
        """Add the work of these calls of ``task`` (or find it, made by an earlier run)."""
        d = task.definition
        put = self.backend.put_blob
        envelopes = [encode_call(task.definition.name, c, put) for c in calls]
        digest = hashlib.sha256(
            codec.canonical({"function": d.function, "calls": envelopes}).encode()
        ).hexdigest()[:10]
        with self._lock:
            self._calls[digest] += 1
            seen = self._calls[digest]
        name = f"{d.name}-{digest}" + (f"-{seen}" if seen > 1 else "")
        spec = work_spec(
            name,
            f"task {d.function}",
            d.policy,
            self.source(task.fn, d.policy),
            function_ref(task.fn, d.function, put),
            envelopes,
            self.backend,
        )
        work_id, _ = self.backend.add_work(self.workflow_id, spec)
        return self.tracker.track(WorkHandle(self.tracker, work_id, name, d.name, len(calls)))

    def source(self, fn: Any, policy: Policy) -> str:
        """The cache sha256 of the function's source tree (zipped once per run), or '-'."""
        import sys

        from orchid.fat import packaging

        module = sys.modules.get(getattr(fn, "__module__", ""))
        tree = packaging.tree_of(module, policy.include, policy.exclude) if module else None
        if tree is None:
            return "-"
        with self._lock:
            known = self._sources.get(tree)
        if known is None:
            known = self.backend.put_blob(packaging.zip_tree(tree))
            with self._lock:
                self._sources[tree] = known
        return known


class LocalRun:
    """``workflow.local(...)``: every task call runs at once, here, in this process."""

    def call(self, task: Task[Any, Any], calls: Sequence[Mapping[str, Any]]) -> WorkHandle:
        import traceback

        handle = WorkHandle(None, 0, task.definition.name, task.definition.name, len(calls))
        for index, call in enumerate(calls):
            try:
                value = task.fn(*call.get("args", []), **call.get("kwargs", {}))
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                handle.resolve(
                    index, Outcome(None, False, reason=reason, traceback=traceback.format_exc())
                )
            else:
                handle.resolve(index, Outcome(None, True, value=value, decoded=True))
        return handle


def encode_call(name: str, call: Mapping[str, Any], put: Any) -> codec.Envelope:
    """The envelope of one call's arguments; SerializationError names the argument."""
    from orchid.fat.errors import SerializationError

    try:
        return codec.encode(dict(call), f"the arguments of {name}", put)
    except SerializationError:
        for key, values in (("kwargs", call.get("kwargs", {})), ("args", call.get("args", []))):
            items = values.items() if isinstance(values, dict) else enumerate(values)
            for arg, value in items:
                what = (
                    f"argument {arg!r} of {name}"
                    if key == "kwargs"
                    else f"argument {arg} of {name}"
                )
                codec.encode(value, what, put)
        raise


def function_ref(fn: Any, described: str, put: Any) -> str:
    """How orchid-job finds the function: ``module:qualname``, or the function by value
    (``pickle:<base64>``, ``cache:<sha256>``) when it cannot be imported by name."""
    from orchid.fat import packaging

    ref = packaging.reference(fn)
    if ref is not None:
        return ref
    envelope = codec.encode(fn, f"function {described}", put)
    if "cache" in envelope:
        return f"cache:{envelope['cache']}"
    return f"pickle:{envelope.get('pickle', '')}"


def work_spec(
    name: str,
    description: str,
    policy: Policy,
    source: str,
    function: str,
    calls: Sequence[codec.Envelope],
    backend: Backend,
    *,
    workflow: bool = False,
) -> dict[str, Any]:
    """The template work of task calls: one listed job per call, each running orchid-job."""
    command = [JOB_COMMAND, "--source", source, "--function", function, "--call", "{call}"]
    if workflow:
        command.insert(1, "--workflow")
    resources: dict[str, Any] = {"cores": policy.cores, "gpus": policy.gpus}
    for key, value in (
        ("memory_mb", policy.memory_mb),
        ("walltime", policy.walltime),
        ("queue", policy.queue),
    ):
        if value is not None:
            resources[key] = value
    return {
        "name": name,
        "description": description,
        "command": command,
        "jobs": [{"name": str(i), "args": {"call": c}} for i, c in enumerate(calls)],
        "retries": policy.retries,
        "retry_delay": policy.retry_delay,
        # the workflow function decides what a failed task means: it gets TaskFailed
        "on_failure": "fail" if workflow else "continue",
        "resources": resources,
        "env": {**dict(policy.env), **backend.job_env()},
        "api_token": backend.remote,
        "executor": policy.executor,
    }


def identity(name: str, call: codec.Envelope) -> str:
    """What identifies a workflow run: its name and the arguments it was called with."""
    return hashlib.sha256(codec.canonical({"workflow": name, "call": call}).encode()).hexdigest()


# --- which run a task call belongs to ------------------------------------------------------

_current: ContextVar[Run | LocalRun | None] = ContextVar("orchid_fat_run", default=None)
_active: list[
    Run | LocalRun
] = []  # for threads the workflow function starts (contexts do not follow)
_active_lock = threading.Lock()


def current() -> Run | LocalRun | None:
    run = _current.get()
    if run is not None:
        return run
    with _active_lock:
        return _active[0] if len(_active) == 1 else None


@contextlib.contextmanager
def running(run: Run | LocalRun) -> Iterator[Run | LocalRun]:
    token = _current.set(run)
    with _active_lock:
        _active.append(run)
    try:
        yield run
    finally:
        with _active_lock:
            _active.remove(run)
        _current.reset(token)
