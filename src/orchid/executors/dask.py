"""Run jobs on a Dask distributed cluster: one Dask task per attempt.

Each attempt becomes the task ``orchid-<workflow>-<job>-<attempt>`` that runs
:func:`orchid.executors.remote.run_attempt` on a worker: the job's command in a process of
its own, so a job can use all the cores it asked for and a cancel can stop it. Workers
need Orchid installed (the same version as the agents) and whatever the jobs run.

- **Durable**: each task is published on the scheduler under its key, so it outlives the
  agent that submitted it. A new executor handed the same spec (the carrier adopts the
  jobs of an agent that died) gets the same Dask task back instead of a second run; the
  key is dropped from the scheduler once its end has been handed to the carrier.
- **Retries**: a worker that dies mid-job makes the scheduler run the task again on
  another worker (up to ``distributed.scheduler.allowed-failures`` times; then the attempt
  fails and Orchid's own retries take over).
- **Resources**: ``cores`` above 1, ``gpus`` and ``memory_mb`` become the Dask resources
  ``CPU``, ``GPU`` and ``MEMORY`` (bytes), which only workers started with
  ``--resources "CPU=8,GPU=1,MEMORY=32e9"`` offer; ``queue`` names the worker (name,
  address or host) the job must run on; ``walltime`` is enforced on the worker.
- **Status**: "running" comes from an event the worker logs when the job starts; the end
  comes with the task's result, whose stdout and stderr land in the agent's log folder.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from orchid.errors import ConfigError, ExecutorError
from orchid.executors import _process as proc
from orchid.executors._updates import Updates
from orchid.executors.base import (
    BuildContext,
    ExecutorOptions,
    JobSpec,
    JobUpdate,
    Resources,
    UpdateState,
    WakeUp,
)
from orchid.executors.remote import Outcome
from orchid.extras import missing

logger = logging.getLogger(__name__)

RUNNING_TOPIC = "orchid-running"
_CAPACITY_TTL_S = 1.0


def _distributed() -> Any:
    """The ``distributed`` package, imported when a Dask executor is first used (it is
    large, and only partly typed: Orchid handles its objects as ``Any``)."""
    try:
        return importlib.import_module("distributed")
    except ModuleNotFoundError as exc:
        raise missing("dask", exc, "the dask executor") from None


def task_key(key: str, namespace: str = "orchid") -> str:
    """The Dask task (and published dataset) name of an Orchid attempt key.

    ``namespace`` keeps apart Orchid installations (databases) sharing one cluster, whose
    attempt keys may be equal.
    """
    return f"{namespace}-{key}"


def _cancel_event(name: str) -> str:
    return name + "-cancel"


def dask_resources(res: Resources) -> dict[str, float]:
    """The Dask resource restrictions of a request (empty: any worker will do)."""
    out: dict[str, float] = {}
    if res.cores > 1:
        out["CPU"] = res.cores
    if res.gpus:
        out["GPU"] = res.gpus
    if res.memory_mb:
        out["MEMORY"] = res.memory_mb * 2**20
    return out


def run_on_worker(spec: JobSpec, python: str | None = None) -> Outcome:
    """The Dask task: run the attempt on this worker, stopping it if the agent cancels it."""
    from orchid.executors.remote import run_attempt

    dd = _distributed()
    worker = dd.get_worker()
    name = str(worker.get_current_task())
    node = f"{worker.name} ({worker.address})"
    try:
        worker.log_event(RUNNING_TOPIC, {"task": name, "at": time.time(), "node": node})
    except Exception:  # "running" is informative; the job runs anyway
        logger.debug("cannot log the running event of %s", spec.key, exc_info=True)
    cancel = dd.Event(_cancel_event(name), client=dd.get_client())
    return run_attempt(
        spec,
        stop_wait=lambda seconds: bool(cancel.wait(timeout=seconds)),
        node=node,
        python=python or sys.executable,
    )


class DaskOptions(ExecutorOptions):
    address: str | None = Field(
        None, description="the scheduler, tcp://HOST:8786; none: a LocalCluster"
    )
    local_workers: int = Field(2, ge=1, description="workers of the LocalCluster")
    slots: int | None = Field(
        None, ge=1, description="jobs in flight (default: the cluster's threads)"
    )
    python: str | None = Field(None, description="what `python` means on the workers")
    namespace: str | None = Field(None, description="prefix of task names (default: per database)")
    connect_timeout: float = Field(30.0, gt=0)


class DaskExecutor:
    """Jobs as tasks on a Dask cluster at ``address``, or on a LocalCluster it starts.

    ``python`` is the interpreter a bare ``python`` command means on the workers (default:
    the worker's own). ``slots`` caps the jobs in flight (default: the cluster's threads).
    ``namespace`` prefixes task names (see :func:`task_key`); agents of one installation
    must share it, so that one adopts what another submitted.
    """

    durable = True
    options_model: ClassVar[type[ExecutorOptions]] = DaskOptions

    @classmethod
    def from_config(cls, options: DaskOptions, context: BuildContext) -> DaskExecutor:
        return cls(
            context.log_dir,
            address=options.address,
            name=context.name,
            wake=context.wake,
            local_workers=options.local_workers,
            slots=options.slots,
            python=options.python,
            connect_timeout_s=options.connect_timeout,
            namespace=options.namespace or context.namespace,
        )

    def __init__(
        self,
        log_dir: Path,
        *,
        address: str | None = None,
        name: str = "dask",
        wake: WakeUp | None = None,
        clock: Callable[[], float] = time.time,
        local_workers: int = 2,
        slots: int | None = None,
        python: str | None = None,
        connect_timeout_s: float = 30.0,
        namespace: str = "orchid",
    ) -> None:
        dd = _distributed()
        self.name = name
        self._log_dir = Path(log_dir)
        self._clock = clock
        self._slots = slots
        self._python = python
        self._namespace = namespace
        self._cluster: Any = None
        if address is None:
            self._cluster = dd.LocalCluster(
                n_workers=local_workers,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address=None,
            )
            address = self._cluster.scheduler_address
        try:
            self._client: Any = dd.Client(address, timeout=connect_timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(
                f"executor {name}: cannot reach the Dask scheduler at {address} ({exc}); "
                "start it (`dask scheduler`) or fix the address in the settings file"
            ) from None
        self.address = address
        self._lock = threading.Lock()
        self._futures: dict[str, Any] = {}  # attempt key → its task, until it has ended
        self._specs: dict[str, JobSpec] = {}
        self._ended: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._out = Updates(name, wake, clock)
        self._forget: list[str] = []  # ended tasks whose final update is not handed over yet
        self._handed: list[str] = []  # ended tasks handed over by the last poll
        self._capacity: tuple[float, int] = (0.0, 0)
        self._closed = False
        self._client.subscribe_topic(RUNNING_TOPIC, self._on_running)
        self._collector = threading.Thread(
            target=self._collect, name=f"orchid-{name}-collect", daemon=True
        )
        self._collector.start()

    # --- the Executor protocol ---------------------------------------------------------

    def capacity(self) -> int:
        """The cluster's worker threads (or ``slots``) minus the jobs in flight here."""
        now = time.monotonic()
        stamp, total = self._capacity
        if now - stamp > _CAPACITY_TTL_S:
            if self._slots is not None:
                total = self._slots
            else:
                try:
                    total = sum(self._client.nthreads().values())
                except Exception:
                    logger.warning("%s: cannot reach the Dask scheduler", self.name)
                    total = 0
            self._capacity = (now, total)
        with self._lock:
            return max(0, total - len(self._futures))

    def submit(self, jobs: Sequence[JobSpec]) -> None:
        """Submit a task per attempt, or re-attach to the task already there for its key."""

        fresh: list[JobSpec] = []
        noops: list[JobUpdate] = []
        with self._lock:
            if self._closed:
                raise ExecutorError(f"executor {self.name} is closed")
            for spec in jobs:
                if spec.key in self._futures:
                    logger.warning("job %s: already submitted; ignored", spec.key)
                elif spec.payload.kind == "noop":
                    noops.append(self._out.make(spec, "succeeded", exit_code=0))
                else:
                    fresh.append(spec)
                    self._specs[spec.key] = spec  # before it can start: its "running" may come fast
        futures: dict[str, Any] = {}
        try:
            for spec in fresh:
                res = spec.resources
                futures[self._task(spec.key)] = self._client.submit(
                    run_on_worker,
                    dataclasses.replace(spec, adopted=False),  # the same task either way
                    self._python,
                    key=self._task(spec.key),
                    pure=False,
                    resources=dask_resources(res) or None,
                    workers=[res.queue] if res.queue else None,
                    allow_other_workers=False,
                )
            if futures:
                # published tasks outlive this client: a restarted agent finds them by key
                self._client.publish_dataset(futures, override=True)
        except Exception as exc:
            with self._lock:
                for spec in fresh:
                    self._specs.pop(spec.key, None)
            for fut in futures.values():
                fut.cancel()
            raise ExecutorError(
                f"executor {self.name}: the Dask scheduler refused jobs: {exc}"
            ) from exc
        with self._lock:
            for spec in fresh:
                self._futures[spec.key] = futures[self._task(spec.key)]
        for spec in fresh:
            fut = futures[self._task(spec.key)]
            fut.add_done_callback(lambda _f, key=spec.key: self._ended.put(key))
        self._out.push(*noops)

    def poll(self) -> list[JobUpdate]:
        """Updates since the last call; drops the tasks whose end the previous call handed over.

        The carrier records what one poll returned before it polls again, so a task is
        dropped from the scheduler only once its end is safely in the database.
        """
        with self._lock:
            updates = self._out.drain()
            forget, self._handed, self._forget = self._handed, self._forget, []
        if forget:
            try:
                self._client.unpublish_dataset(forget)
            except Exception:  # they go when the scheduler restarts; nothing is lost
                logger.warning("%s: cannot drop %d ended tasks", self.name, len(forget))
        return updates

    def cancel(self, keys: Sequence[str]) -> None:
        """Stop these attempts: queued tasks are dropped, running jobs are killed."""
        stopped: list[JobSpec] = []
        with self._lock:
            for key in keys:
                fut = self._futures.pop(key, None)
                if fut is None:
                    continue
                stopped.append(self._specs.pop(key))
                self._forget.append(self._task(key))
                fut.cancel()
        for spec in stopped:
            try:
                event = _distributed().Event(
                    _cancel_event(self._task(spec.key)), client=self._client
                )
                event.set()
            except Exception:
                logger.warning("job %s: cannot tell its worker to stop it", spec.key)
            self._out.push(self._out.make(spec, "failed", error="cancelled"))

    def close(self) -> None:
        """Stop watching; the tasks go on, for the next agent to adopt. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._futures.clear()
            recorded = self._handed
        if recorded:  # the carrier recorded them before it closed us
            try:
                self._client.unpublish_dataset(recorded)
            except Exception:
                logger.debug("cannot drop ended tasks", exc_info=True)
        self._ended.put(None)
        self._collector.join(timeout=10)
        try:
            self._client.close(timeout=10)
        except Exception:
            logger.debug("closing the Dask client failed", exc_info=True)
        if self._cluster is not None:
            self._cluster.close(timeout=10)

    def _task(self, key: str) -> str:
        return task_key(key, self._namespace)

    # --- what the cluster tells -------------------------------------------------------

    def _on_running(self, event: tuple[float, dict[str, Any]]) -> None:
        """Runs in the client's event loop: a worker started one of our jobs."""
        _, msg = event
        task = msg.get("task") if isinstance(msg, dict) else None
        prefix = self._namespace + "-"
        if not isinstance(task, str) or not task.startswith(prefix):
            return
        with self._lock:
            spec = self._specs.get(task[len(prefix) :])
        if spec is not None:
            self._out.push(
                self._out.make(spec, "running", at=float(msg.get("at") or self._clock()))
            )

    def _collect(self) -> None:
        """Turns ended tasks into final updates (off the event loop: results are fetched)."""
        while True:
            key = self._ended.get()
            if key is None:
                return
            batch = [key]
            while len(batch) < 500:
                try:
                    more = self._ended.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._ended.put(None)
                    break
                batch.append(more)
            for key in batch:
                try:
                    self._finish(key)
                except Exception:
                    logger.exception("job %s: cannot read how it ended", key)

    def _finish(self, key: str) -> None:
        with self._lock:
            fut = self._futures.get(key)
            spec = self._specs.get(key)
        if fut is None or spec is None:
            return  # cancelled meanwhile: already reported
        status = fut.status
        if status == "finished":
            outcome: Outcome = fut.result(timeout=60)
            update = self._outcome_update(spec, outcome)
        elif status == "error":
            exc = fut.exception(timeout=60)
            update = self._out.make(spec, "failed", error=_dask_error(exc))
        else:  # cancelled by the scheduler (it restarted, or another client cancelled it)
            update = self._out.make(spec, "failed", error=f"the Dask task was {status}")
        with self._lock:
            if self._futures.pop(key, None) is None:
                return
            self._specs.pop(key, None)
            self._forget.append(self._task(key))
        self._out.push(update)

    def _outcome_update(self, spec: JobSpec, outcome: Outcome) -> JobUpdate:
        files = proc.AttemptFiles.for_job(self._log_dir, spec)
        log_uri: str | None = None
        try:
            files.out.parent.mkdir(parents=True, exist_ok=True)
            files.clear_logs()
            files.out.write_bytes(outcome.stdout)
            files.err.write_bytes(outcome.stderr)
            log_uri = str(files.out)
        except OSError as exc:
            logger.warning("job %s: cannot write its logs: %s", spec.key, exc)
        state: UpdateState = "failed" if outcome.error else "succeeded"
        return self._out.make(
            spec,
            state,
            exit_code=outcome.exit_code,
            result=outcome.result,
            error=outcome.error,
            usage=outcome.usage,
            log_uri=log_uri,
        )

    # --- updates ----------------------------------------------------------------------


def _dask_error(exc: BaseException | None) -> str:
    if type(exc).__name__ == "KilledWorker":
        return (
            "the Dask workers running it died too often (KilledWorker); "
            "see the workers' logs (memory? segfault?)"
        )
    return proc.truncate(f"Dask error: {type(exc).__name__}: {exc}")
