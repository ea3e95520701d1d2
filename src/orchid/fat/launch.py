"""Running a workflow function: submit (or find) its workflow, run it, return its value.

Client side, the function runs here while the workflow is ``open``; when it returns the
workflow is closed (with the exception, if it raised) and ends once its works have.
Server side, the workflow has one work whose job runs the function (``orchid-job
--workflow``), and the caller waits for that job's result. Either way, the workflow is
found again by its name and arguments: a caller that restarts picks up the workflow it
had started, and the works whose jobs had finished are reused, not run again.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from orchid.backend.base import Backend
from orchid.backend.choose import from_env
from orchid.fat import codec, runtime
from orchid.fat.errors import TaskFailed, UsageError, WorkflowFailed
from orchid.fat.futures import MapFuture, TaskFuture

if TYPE_CHECKING:
    from orchid.fat.decorators import Workflow, WorkflowRun

log = logging.getLogger(__name__)
FRESH = frozenset({"failed", "cancelled"})  # such a workflow is run anew, not resumed
TERMINAL = frozenset({"succeeded", "failed", "partial", "cancelled"})
FAILING_WAIT_S = 10.0  # how long a failed embedded run waits for its workflow to end
FUTURE_METHODS = frozenset({"result", "done", "exception", "as_completed"})


def settle(value: Any) -> Any:
    """A workflow that returns a future returns its value."""
    if isinstance(value, TaskFuture | MapFuture):
        return value.result()
    return value


def launch(wf: Workflow[Any, Any], call: dict[str, Any], handle: WorkflowRun[Any] | None) -> Any:
    backend = wf.backend or from_env()
    owned = wf.backend is None
    backend.start()
    try:
        d = wf.definition
        envelope = runtime.encode_call(d.name, call, backend.put_blob)
        key = runtime.identity(d.name, envelope)
        found = backend.find_workflow(d.name, key)
        if found is not None and found[1] not in FRESH:
            workflow_id = found[0]
            log.info("workflow %s (%s): resuming it", workflow_id, d.name)
        else:
            workflow_id = backend.submit(_template(wf, envelope, key, backend))
        if handle is not None:
            handle.workflow_id = workflow_id
        try:
            if d.side == "client":
                value = _client_side(wf, call, backend, workflow_id)
            else:
                value = _server_side(wf, backend, workflow_id)
        except Exception:
            if not backend.remote:  # let the agents here record the failure, briefly
                _wait_end(backend, workflow_id, FAILING_WAIT_S)
            raise
        if not backend.remote:  # the agents here must see the rest through
            _wait_end(backend, workflow_id)
        return value
    finally:
        if owned:
            backend.stop()


def _template(
    wf: Workflow[Any, Any], envelope: codec.Envelope, key: str, backend: Backend
) -> dict[str, Any]:
    d = wf.definition
    shown = envelope.get("json")
    fat = {
        "key": key,
        "side": d.side,
        "function": d.function,
        "arguments": shown if len(codec.canonical(shown)) <= 4096 else None,
    }
    template: dict[str, Any] = {
        "name": d.name,
        "description": f"Function-as-a-Task: {d.function}, run on the {d.side} side",
        "parameters": {"fat": fat},
        "open": d.side == "client",
        "works": [],
    }
    if d.side == "server":
        run = runtime.Run(backend, 0)
        template["works"].append(
            runtime.work_spec(
                runtime.WORKFLOW_WORK,
                f"workflow function {d.function}",
                d.policy,
                run.source(wf.fn, d.policy),
                runtime.function_ref(wf.fn, d.function, backend.put_blob),
                [envelope],
                backend,
                workflow=True,
            )
        )
    return template


def call_function(fn: Any, call: dict[str, Any], name: str) -> Any:
    """Call a workflow function, turning the classic slip (``plain(x).result()``) into a
    message that says what to do."""
    try:
        return settle(fn(*call.get("args", []), **call.get("kwargs", {})))
    except AttributeError as exc:
        if exc.name in FUTURE_METHODS and not isinstance(exc.obj, TaskFuture | MapFuture):
            raise UsageError(
                f"workflow {name}: {exc}. Only calling a @task gives a future; this value "
                "came from a plain function, which ran here and returned it already: use "
                "it as it is, or decorate that function with @task to run it as a job"
            ) from exc
        raise


def _client_side(
    wf: Workflow[Any, Any], call: dict[str, Any], backend: Backend, workflow_id: int
) -> Any:
    run = runtime.Run(backend, workflow_id)
    try:
        with runtime.running(run):
            value = call_function(wf.fn, call, wf.definition.name)
    except Exception as exc:
        backend.close(workflow_id, f"the workflow function raised {type(exc).__name__}: {exc}")
        raise
    backend.close(workflow_id, None)
    return value


def _server_side(wf: Workflow[Any, Any], backend: Backend, workflow_id: int) -> Any:
    work = next(w for w in backend.works(workflow_id) if w.name == runtime.WORKFLOW_WORK)
    tracker = runtime.Tracker(backend, workflow_id)
    handle = tracker.track(
        runtime.WorkHandle(tracker, work.id, runtime.WORKFLOW_WORK, wf.definition.name, 1)
    )
    try:
        return handle.value(0, None)
    except TaskFailed as exc:
        raise WorkflowFailed(
            f"workflow {wf.definition.name} ({workflow_id}) failed on the server side: "
            f"{exc.reason}"
            + (f"\n\nremote traceback:\n{exc.remote_traceback}" if exc.remote_traceback else "")
        ) from None


def _wait_end(backend: Backend, workflow_id: int, limit: float | None = None) -> None:
    deadline = None if limit is None else time.monotonic() + limit
    while backend.workflow_status(workflow_id)[0] not in TERMINAL:
        if deadline is not None and time.monotonic() > deadline:
            return  # jobs still run: the next agents to run carry the workflow to its end
        backend.wait(workflow_id, 0.05)


def run_in_job(fn: Any, call: dict[str, Any], workflow_id: int, name: str) -> Any:
    """orchid-job --workflow: run a server-side workflow function in its job."""
    backend = from_env(in_job=True)
    backend.start()
    try:
        with runtime.running(runtime.Run(backend, workflow_id)):
            return call_function(fn, call, name)
    finally:
        backend.stop()


__all__ = ["launch", "run_in_job", "settle"]
