"""Run jobs on an HTCondor pool through a schedd, with the official Python bindings.

Each batch the carrier hands over becomes one cluster (one ``schedd.submit`` with an
item per attempt). Every job carries ``+OrchidKey`` (its attempt key) and
``+OrchidNamespace``, so a restarted agent finds it in the queue or the history instead
of submitting it twice. A thread queries the schedd every ``poll_interval`` seconds for
the namespace's jobs and turns what changed into updates.

- The job runs ``/bin/sh -c`` around the command of :func:`job_command`: it makes the
  result file (``orchid-result.json``, transferred back to the agent's log folder) and
  enters ``workdir`` when that exists on the execute node. The command itself must
  exist there (``transfer_executable = false``): Orchid (for ``function`` payloads and
  ``orchid-job``) is installed on the nodes, or on a shared file system.
- stdout and stderr come back as the job's ``output`` and ``error`` files, which are the
  attempt's log files under the agent's log folder.
- Resources: ``request_cpus``, ``request_memory`` (MB), ``request_gpus``,
  ``allowed_job_duration`` (walltime: the schedd holds the job, Orchid removes it and
  reports it failed) and ``+<queue_attribute>`` (default ``JobFlavour``) for ``queue``.
- Cancel: ``schedd.act(JobAction.Remove, ...)``.

Which binding calls are used, exactly, is what ``tests/executors/fake_htcondor.py``
implements; the tests run against that fake, not a real pool.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from orchid import jobvars
from orchid.errors import ConfigError, ExecutorError
from orchid.executors import _process as proc
from orchid.executors._condor_submit import (
    COMPLETED,
    HELD,
    HOLD_JOB_DURATION,
    IDLE,
    PRELUDE,
    PROJECTION,
    REMOVED,
    RUNNING,
    HTCondorOptions,
    condor_arguments,
    condor_environment,
    description,
    drop_empty,
    usage_of,
)
from orchid.executors._updates import Updates, pop_each
from orchid.executors.base import (
    BuildContext,
    ExecutorOptions,
    JobSpec,
    JobUpdate,
    UpdateState,
    WakeUp,
)
from orchid.executors.jobcommand import job_command
from orchid.extras import missing

logger = logging.getLogger(__name__)


def _bindings() -> Any:
    try:
        return importlib.import_module("htcondor2")
    except ModuleNotFoundError as exc:
        raise missing("htcondor", exc, "the htcondor executor") from None


@dataclass
class _Job:
    spec: JobSpec
    id: str | None = None  # "cluster.proc" once submitted or found
    state: int = IDLE
    started: bool = False


class HTCondorExecutor:
    """Jobs on an HTCondor schedd; see the module docstring."""

    durable = True
    options_model: ClassVar[type[ExecutorOptions]] = HTCondorOptions

    @classmethod
    def from_config(cls, options: HTCondorOptions, context: BuildContext) -> HTCondorExecutor:
        return cls(
            context.log_dir,
            options,
            name=context.name,
            wake=context.wake,
            namespace=options.namespace or context.namespace,
        )

    def __init__(
        self,
        log_dir: Path,
        options: HTCondorOptions,
        *,
        name: str = "htcondor",
        wake: WakeUp | None = None,
        namespace: str = "orchid",
        clock: Callable[[], float] = time.time,
        bindings: Any = None,
    ) -> None:
        self.name = name
        self._log_dir = Path(log_dir)
        self._opts = options
        self._ns = namespace
        self._clock = clock
        self._htcondor = bindings or _bindings()
        self._schedd = self._connect()
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}  # attempt key → job, until it has ended
        self._out = Updates(name, wake, clock)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"orchid-{name}", daemon=True)
        self._thread.start()

    def _connect(self) -> Any:
        h = self._htcondor
        try:
            if self._opts.schedd is None and self._opts.collector is None:
                return h.Schedd()
            ad = h.Collector(self._opts.collector).locate(h.DaemonType.Schedd, self._opts.schedd)
            return h.Schedd(ad)
        except Exception as exc:
            raise ConfigError(
                f"executor {self.name}: cannot reach the HTCondor schedd "
                f"{self._opts.schedd or '(local)'}: {exc}"
            ) from None

    # --- the Executor protocol ---------------------------------------------------------

    def capacity(self) -> int:
        with self._lock:
            return max(0, self._opts.slots - len(self._jobs))

    def submit(self, jobs: Sequence[JobSpec]) -> None:
        """Submit one cluster for the batch; adopted attempts already on the schedd are found."""
        with self._lock:
            if self._closed.is_set():
                raise ExecutorError(f"executor {self.name} is closed")
            # ended: noops, and below the jobs that cannot start
            fresh, ended = self._out.sort_out(jobs, self._jobs)
        found = self._find([s for s in fresh if s.adopted])
        items: list[dict[str, str]] = []
        todo: list[JobSpec] = []
        for spec in fresh:
            if spec.key in found:
                continue
            try:
                items.append(self._item(spec))
                todo.append(spec)
            except proc.StartError as exc:
                ended.append(self._out.make(spec, "failed", error=str(exc)))
        ids: list[str] = []
        if items:
            try:
                result = self._schedd.submit(self._description(), itemdata=iter(items))
            except Exception as exc:
                raise ExecutorError(
                    f"executor {self.name}: the schedd refused jobs: {exc}"
                ) from exc
            cluster, first = result.cluster(), result.first_proc()
            ids = [f"{cluster}.{first + i}" for i in range(len(items))]
        with self._lock:
            for spec, (job_id, state) in ((s, found[s.key]) for s in fresh if s.key in found):
                self._jobs[spec.key] = _Job(spec, job_id, IDLE if state is None else state)
            for spec, job_id in zip(todo, ids, strict=True):
                self._jobs[spec.key] = _Job(spec, job_id)
        logger.debug("%s: submitted %d jobs, found %d", self.name, len(ids), len(found))
        self._out.push(*ended)

    def poll(self) -> list[JobUpdate]:
        return self._out.drain()

    def cancel(self, keys: Sequence[str]) -> None:
        """Remove these jobs from the schedd; each reports failed, ``cancelled``."""
        with self._lock:
            stopped = pop_each(self._jobs, keys)
        ids = [j.id for j in stopped if j.id]
        if ids:
            try:
                self._schedd.act(self._htcondor.JobAction.Remove, ids, reason="cancelled by Orchid")
            except Exception:
                logger.warning("%s: cannot remove %s", self.name, ids, exc_info=True)
        for job in stopped:
            self._out.push(self._out.make(job.spec, "failed", error="cancelled"))

    def close(self) -> None:
        """Stop watching; the jobs stay on the schedd for the next agent to adopt."""
        self._closed.set()
        self._thread.join(timeout=self._opts.poll_interval + 10)

    # --- submission --------------------------------------------------------------------

    def _description(self) -> Any:
        return self._htcondor.Submit(description(self._opts, self._ns))

    def _item(self, spec: JobSpec) -> dict[str, str]:
        command = job_command(spec, python=self._opts.python)
        files = proc.AttemptFiles.for_job(self._log_dir, spec)
        files.prepare(spec.args)
        env = proc.job_env(spec)
        env.update(command.env)
        if spec.payload.workdir:
            env[jobvars.WORKDIR] = spec.payload.workdir
        res = spec.resources
        return {
            "orchid_args": condor_arguments(["-c", PRELUDE, *command.argv]),
            "orchid_env": condor_environment(env),
            "orchid_dir": str(files.out.parent),
            "orchid_out": str(files.out),
            "orchid_err": str(files.err),
            "orchid_result": str(files.result),
            "orchid_cpus": str(res.cores),
            "orchid_memory": str(res.memory_mb or 1024),
            "orchid_gpus": str(res.gpus),
            "orchid_walltime": str(max(1, round(res.walltime_s)))
            if res.walltime_s
            else "undefined",
            "orchid_queue": json.dumps(res.queue) if res.queue else "undefined",
            "orchid_key": spec.key,
            "orchid_work": spec.work_name,
        }

    def _find(self, specs: Sequence[JobSpec]) -> dict[str, tuple[str, int | None]]:
        """Adopted attempts already on the schedd (queue, then history): key → (id, state)."""
        if not specs:
            return {}
        keys = ", ".join(json.dumps(s.key) for s in specs)
        constraint = f'OrchidNamespace == "{self._ns}" && member(OrchidKey, {{{keys}}})'
        found: dict[str, tuple[str, int | None]] = {}
        try:
            for ad in self._schedd.query(
                constraint, ["ClusterId", "ProcId", "OrchidKey", "JobStatus"]
            ):
                found[str(ad["OrchidKey"])] = (f"{ad['ClusterId']}.{ad['ProcId']}", None)
            missing = [s for s in specs if s.key not in found]
            if missing:
                for ad in self._schedd.history(
                    constraint, ["ClusterId", "ProcId", "OrchidKey"], match=len(specs)
                ):
                    found.setdefault(
                        str(ad["OrchidKey"]), (f"{ad['ClusterId']}.{ad['ProcId']}", None)
                    )
        except Exception as exc:
            raise ExecutorError(f"executor {self.name}: cannot query the schedd: {exc}") from exc
        return found

    # --- following the jobs ------------------------------------------------------------

    def _watch(self) -> None:
        while not self._closed.wait(self._opts.poll_interval):
            try:
                self._sync()
            except Exception:
                logger.warning(
                    "%s: cannot query the schedd; trying again", self.name, exc_info=True
                )

    def _sync(self) -> None:
        with self._lock:
            watched = {j.id: j for j in self._jobs.values() if j.id}
        if not watched:
            return
        constraint = f'OrchidNamespace == "{self._ns}"'
        seen: dict[str, Any] = {}
        for ad in self._schedd.query(constraint, PROJECTION):
            seen[f"{ad['ClusterId']}.{ad['ProcId']}"] = ad
        gone = [i for i in watched if i not in seen]
        if gone:
            clusters = ", ".join(sorted({i.split(".")[0] for i in gone}))
            for ad in self._schedd.history(
                f"{constraint} && member(ClusterId, {{{clusters}}})",
                PROJECTION,
                match=len(gone) * 4,
            ):
                seen.setdefault(f"{ad['ClusterId']}.{ad['ProcId']}", ad)
        to_remove: list[str] = []
        for job_id, job in watched.items():
            ad = seen.get(job_id)
            if ad is None:
                continue  # neither queue nor history yet: ask again next time
            self._observe(job, ad, to_remove)
        if to_remove:
            try:
                self._schedd.act(self._htcondor.JobAction.Remove, to_remove, reason="Orchid: held")
            except Exception:
                logger.warning("%s: cannot remove held jobs %s", self.name, to_remove)

    def _observe(self, job: _Job, ad: Any, to_remove: list[str]) -> None:
        status = int(ad.get("JobStatus", IDLE))
        spec = job.spec
        if status == RUNNING and not job.started:
            job.started = True
            self._out.push(self._out.make(spec, "running", log_uri=str(self._files(spec).out)))
        elif status == COMPLETED:
            self._finish(job, self._completed(spec, ad))
        elif status == HELD:
            to_remove.append(str(job.id))
            code = int(ad.get("HoldReasonCode", 0) or 0)
            if code == HOLD_JOB_DURATION and spec.resources.walltime_s:
                error = f"walltime of {spec.resources.walltime_s:g}s exceeded"
            else:
                error = f"held by HTCondor: {ad.get('HoldReason', 'no reason given')}"
            self._finish(
                job,
                self._out.make(
                    spec, "failed", error=error, usage=usage_of(ad), log_uri=self._log(spec)
                ),
            )
        elif status == REMOVED:
            self._finish(
                job,
                self._out.make(
                    spec, "failed", error="removed from the HTCondor queue", log_uri=self._log(spec)
                ),
            )

    def _completed(self, spec: JobSpec, ad: Any) -> JobUpdate:
        files = self._files(spec)
        if ad.get("ExitBySignal"):
            signum = int(ad.get("ExitSignal", 0) or 0)
            code: int | None = -signum
            error: str | None = f"killed by signal {proc.signal_name(signum)}"
        else:
            code = int(ad.get("ExitCode", 0) or 0)
            _, error = proc.exit_reason(code << 8, files.err)
        result = None
        if error is None:
            drop_empty(files.result)
            result, error = proc.read_result(files)
        state: UpdateState = "failed" if error else "succeeded"
        return self._out.make(
            spec,
            state,
            exit_code=code,
            result=result,
            error=error,
            usage=usage_of(ad),
            log_uri=self._log(spec),
        )

    def _finish(self, job: _Job, update: JobUpdate) -> None:
        self._out.push_end(self._lock, self._jobs, job.spec.key, job, update)

    # --- helpers -----------------------------------------------------------------------

    def _files(self, spec: JobSpec) -> proc.AttemptFiles:
        return proc.AttemptFiles.for_job(self._log_dir, spec)

    def _log(self, spec: JobSpec) -> str | None:
        out = self._files(spec).out
        return str(out) if out.exists() else None
