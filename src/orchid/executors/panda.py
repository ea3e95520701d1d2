"""Run jobs on PanDA through panda-client: a PanDA task per work, a PanDA job per attempt.

- **Tasks**: the first attempts of a work create the task ``<namespace>.<workflow>.<work>``
  (``Client.insertTaskParams``) with one pseudo-input file per attempt (``noInput``,
  ``pfnList``, ``nFilesPerJob = 1``), so PanDA makes one job per attempt. Attempts
  released later (children whose parents just finished: the job-level DAG of Rubin) are
  added to the same task by submitting it again with the new files (incremental
  execution); PanDA's own retries are off (``maxAttempt = 1``): Orchid retries.
- **Command lines**: those of a batch go into one sandbox uploaded to the PanDA cache
  (``Client.putFile``); each job runs ``python3 -m orchid.executors.pandajob`` with its
  pseudo-input name, which fetches its command from there (see that module). The nodes
  need Orchid installed (or on a shared file system) and whatever the jobs run.
- **Following**: every ``poll_interval`` s, the task's jobs (``getPandaIDsWithTaskID``,
  ``getJobStatus``) and, for attempts PanDA has made no job for yet, the task's status
  (``getTaskStatus``: a broken or aborted task fails them). With ``status_broker`` set,
  PanDA's job status messages (STOMP) tell which jobs to look at the moment they change,
  and ``poll_interval`` is only the fallback that catches a message lost on the way.
- **Abort**: ``killJobs`` for the attempts cancelled, ``killTask`` when that was all of
  the task's live attempts.
- **Restart**: adopted attempts are looked up in their task
  (``get_tasks_detailed_info_since`` by task name) before anything is submitted.
- **Results and logs**: the result is the job's metadata (the JSON the job wrote to
  ``orchid-result.json``); logs stay in PanDA: ``log_uri`` links the monitor's job page.

The tests run against a fake PanDA server (tests/executors/fake_panda.py) implementing
exactly the endpoints these calls use, modelled on PanDA's documented API.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from orchid.errors import ConfigError, ExecutorError
from orchid.executors import _process as proc
from orchid.executors._panda_api import (
    DEAD_TASK,
    FAILED,
    RUNNING,
    TASK_ID,
    PandaOptions,
    as_int,
    failure,
    panda_client,
    pseudo_input,
    result_of,
    task_params,
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

logger = logging.getLogger(__name__)


@dataclass
class _Job:
    spec: JobSpec
    task: str  # task name
    lfn: str
    panda_id: int | None = None
    started: bool = False
    kill: bool = False


class PandaExecutor:
    """Jobs as PanDA jobs of one task per work; see the module docstring."""

    durable = True
    options_model: ClassVar[type[ExecutorOptions]] = PandaOptions

    @classmethod
    def from_config(cls, options: PandaOptions, context: BuildContext) -> PandaExecutor:
        return cls(
            context.log_dir,
            options,
            name=context.name,
            wake=context.wake,
            namespace=options.namespace or context.namespace,
            status_messages=status_receiver(options, context),
        )

    def __init__(
        self,
        log_dir: Path,
        options: PandaOptions,
        *,
        name: str = "panda",
        wake: WakeUp | None = None,
        namespace: str = "orchid",
        clock: Callable[[], float] = time.time,
        status_messages: Any = None,
    ) -> None:
        self.name = name
        self._log_dir = Path(log_dir)
        self._opts = options
        self._ns = namespace
        self._clock = clock
        self._client = panda_client(options)
        self._lock = threading.Lock()
        self._tasks: dict[str, int] = {}  # task name → jediTaskID
        self._jobs: dict[str, _Job] = {}  # attempt key → job, until it has ended
        self._to_kill: dict[str, _Job] = {}  # cancelled before PanDA made their job
        self._out = Updates(name, wake, clock)
        self._closed = threading.Event()
        self._kick = threading.Event()
        self._flagged: set[int] = set()  # PanDA ids a status message named
        self._messages = status_messages
        if status_messages is not None:
            status_messages.start(self._on_message)
        self._thread = threading.Thread(target=self._watch, name=f"orchid-{name}", daemon=True)
        self._thread.start()

    # --- the Executor protocol ---------------------------------------------------------

    def capacity(self) -> int:
        with self._lock:
            return max(0, self._opts.slots - len(self._jobs))

    def submit(self, jobs: Sequence[JobSpec]) -> None:
        """Add the attempts to their works' tasks (one sandbox for the batch)."""
        with self._lock:
            if self._closed.is_set():
                raise ExecutorError(f"executor {self.name} is closed")
            # ended: noops, and below the jobs that cannot start
            fresh, ended = self._out.sort_out(jobs, self._jobs)
        ended += [
            self._out.make(
                spec,
                "failed",
                error="the panda executor cannot ask for GPUs; send the work to a "
                "GPU queue with resources.queue",
            )
            for spec in fresh
            if spec.resources.gpus
        ]
        fresh = [s for s in fresh if not s.resources.gpus]
        found = self._find([s for s in fresh if s.adopted])
        todo = [s for s in fresh if s.key not in found]
        entries: dict[str, dict[str, Any]] = {}
        for spec in todo:
            try:
                entries[spec.key] = self._entry(spec)
            except proc.StartError as exc:
                ended.append(self._out.make(spec, "failed", error=str(exc)))
        added: list[_Job] = []
        if entries:
            sandbox = self._upload(entries)
            by_task: dict[str, list[JobSpec]] = {}
            for spec in todo:
                if spec.key in entries:
                    by_task.setdefault(self._task_name(spec), []).append(spec)
            for task, specs in by_task.items():
                lfns = [f"{s.key}.{sandbox}" for s in specs]
                self._tasks[task] = self._insert(task, specs[0], lfns)
                added += [_Job(s, task, lfn) for s, lfn in zip(specs, lfns, strict=True)]
        with self._lock:
            for job in [*found.values(), *added]:
                self._jobs[job.spec.key] = job
        self._kick.set()
        self._out.push(*ended)

    def poll(self) -> list[JobUpdate]:
        return self._out.drain()

    def cancel(self, keys: Sequence[str]) -> None:
        """Kill these attempts' PanDA jobs (and a task left with nothing live)."""
        with self._lock:
            stopped = pop_each(self._jobs, keys)
            live_tasks = {j.task for j in self._jobs.values()}
        ids = [j.panda_id for j in stopped if j.panda_id is not None]
        if ids:
            status, _ = self._client.killJobs(ids)
            if status != 0:
                logger.warning("%s: killJobs(%s) failed", self.name, ids)
        with self._lock:
            for job in stopped:
                if job.panda_id is None:  # PanDA made no job yet: kill it when it does
                    job.kill = True
                    self._to_kill[job.spec.key] = job
        for task in {j.task for j in stopped} - live_tasks:
            task_id = self._tasks.get(task)
            if task_id is not None:
                self._client.killTask(task_id)
        for job in stopped:
            self._out.push(self._out.make(job.spec, "failed", error="cancelled"))

    def close(self) -> None:
        """Stop following; the jobs go on in PanDA for the next agent to adopt."""
        self._closed.set()
        self._kick.set()
        if self._messages is not None:
            self._messages.stop()
        self._thread.join(timeout=30)

    # --- submission --------------------------------------------------------------------

    def _task_name(self, spec: JobSpec) -> str:
        return f"{self._ns}.{spec.workflow_id}.{spec.work_name}"

    def _entry(self, spec: JobSpec) -> dict[str, Any]:
        command = job_command(spec, python=self._opts.python)
        env = proc.job_env(spec)
        env.update(command.env)
        return {"argv": command.argv, "env": env, "workdir": spec.payload.workdir}

    def _upload(self, entries: dict[str, dict[str, Any]]) -> str:
        data = gzip.compress(json.dumps(entries, sort_keys=True).encode(), mtime=0)
        name = f"orchid-{hashlib.sha256(data).hexdigest()[:32]}.json.gz"
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_bytes(data)
            status, message = self._client.putFile(str(path), useCacheSrv=True)
        if status != 0 or message != "True":
            raise ExecutorError(f"executor {self.name}: cannot upload the sandbox: {message}")
        return name

    def _insert(self, task: str, spec: JobSpec, lfns: list[str]) -> int:
        params = task_params(task, spec, lfns, self._opts)
        status, out = self._client.insertTaskParams(params)
        if status != 0 or not isinstance(out, tuple) or out[0] != 0:
            raise ExecutorError(f"executor {self.name}: PanDA refused task {task}: {out}")
        found = TASK_ID.search(str(out[1]))
        if found is None:
            raise ExecutorError(f"executor {self.name}: no jediTaskID in PanDA's answer: {out[1]}")
        return int(found.group(1))

    def _find(self, specs: Sequence[JobSpec]) -> dict[str, _Job]:
        """Adopted attempts PanDA already has a job for, by their task's name."""
        out: dict[str, _Job] = {}
        by_task: dict[str, list[JobSpec]] = {}
        for spec in specs:
            by_task.setdefault(self._task_name(spec), []).append(spec)
        for task, group in by_task.items():
            status, found = self._client.get_tasks_detailed_info_since(filters={"taskName": task})
            if status != 0:
                raise ExecutorError(f"executor {self.name}: cannot look up task {task}: {found}")
            if not found:
                continue
            task_id = int(found[0]["jediTaskID"])
            self._tasks[task] = task_id
            wanted = {s.key: s for s in group}
            for job in self._task_jobs(task_id):
                lfn = pseudo_input(job)
                key = lfn.partition(".")[0] if lfn else None
                if key in wanted and key not in out:
                    out[key] = _Job(wanted[key], task, lfn or "", int(job.PandaID))
        return out

    def _task_jobs(self, task_id: int) -> list[Any]:
        status, ids = self._client.getPandaIDsWithTaskID(task_id)
        if status != 0 or ids is None:
            raise ExecutorError(f"executor {self.name}: cannot list the jobs of task {task_id}")
        return self._describe([int(i) for i in ids])

    def _describe(self, ids: Iterable[int]) -> list[Any]:
        ids = sorted(set(ids))
        jobs: list[Any] = []
        for i in range(0, len(ids), 500):
            status, specs = self._client.getJobStatus(ids[i : i + 500])
            if status != 0 or specs is None:
                raise ExecutorError(f"executor {self.name}: cannot get the status of PanDA jobs")
            jobs += [j for j in specs if j is not None]
        return jobs

    # --- following ---------------------------------------------------------------------

    def _on_message(self, message: dict[str, Any]) -> None:
        """A PanDA job status message (``msg_type: job_status``): look at that job now."""
        if message.get("msg_type") != "job_status":
            return
        try:
            panda_id = int(message["jobid"])
        except (KeyError, TypeError, ValueError):
            return
        with self._lock:
            self._flagged.add(panda_id)
        self._kick.set()

    def _watch(self) -> None:
        interval = self._opts.poll_interval
        while not self._closed.is_set():
            kicked = self._kick.wait(interval)
            self._kick.clear()
            if self._closed.is_set():
                return
            try:
                # with status messages, a kick looks at what they named; the timer at all
                self._sync(everything=self._messages is None or not kicked)
            except Exception:
                logger.warning("%s: cannot follow the jobs; trying again", self.name, exc_info=True)

    def _sync(self, everything: bool = True) -> None:
        with self._lock:
            live = list(self._jobs.values())
            jobs = live + list(self._to_kill.values())
            flagged, self._flagged = self._flagged, set()
        if not jobs:
            return
        by_lfn = {j.lfn: j for j in jobs}
        ids: set[int] = set()
        for task in {j.task for j in jobs if j.panda_id is None}:  # which jobs PanDA made
            task_id = self._tasks.get(task)
            if task_id is None:
                continue
            status, got = self._client.getPandaIDsWithTaskID(task_id)
            if status == 0 and got:
                ids.update(int(i) for i in got)
        known = {j.panda_id for j in live if j.panda_id is not None}
        ids |= known if everything else known & flagged
        to_kill: list[int] = []
        for desc in self._describe(ids):
            job = by_lfn.get(pseudo_input(desc) or "")
            if job is None:
                continue
            job.panda_id = int(desc.PandaID)
            if job.kill:
                to_kill.append(job.panda_id)
                with self._lock:
                    self._to_kill.pop(job.spec.key, None)
            else:
                self._observe(job, desc)
        if to_kill:
            self._client.killJobs(to_kill)
        self._check_tasks([j for j in live if j.panda_id is None])

    def _check_tasks(self, waiting: list[_Job]) -> None:
        """Attempts PanDA made no job for: fail them if their task died."""
        for task in {j.task for j in waiting}:
            task_id = self._tasks.get(task)
            if task_id is None:
                continue
            status, state = self._client.getTaskStatus(task_id)
            if status == 0 and state in DEAD_TASK:
                for job in waiting:
                    if job.task == task:
                        self._finish(
                            job,
                            self._out.make(
                                job.spec, "failed", error=f"PanDA task {task_id} is {state}"
                            ),
                        )

    def _observe(self, job: _Job, desc: Any) -> None:
        state = str(desc.jobStatus)
        spec = job.spec
        if state in RUNNING and not job.started:
            job.started = True
            self._out.push(self._out.make(spec, "running", log_uri=self._log(job)))
        elif state == "finished":
            self._finish(job, self._ended(job, desc, None))
        elif state in FAILED:
            self._finish(job, self._ended(job, desc, failure(desc, spec)))

    def _ended(self, job: _Job, desc: Any, error: str | None) -> JobUpdate:
        code = as_int(desc.transExitCode)
        result: Any = None
        if error is None:
            result, error = result_of(desc.metadata)
        state: UpdateState = "failed" if error else "succeeded"
        return self._out.make(
            job.spec,
            state,
            exit_code=code,
            result=result,
            error=error,
            usage=usage_of(desc),
            log_uri=self._log(job),
        )

    def _finish(self, job: _Job, update: JobUpdate) -> None:
        self._out.push_end(self._lock, self._jobs, job.spec.key, job, update)

    def _log(self, job: _Job) -> str | None:
        if job.panda_id is None:
            return None
        base = (self._opts.monitor_url or self._opts.url).rstrip("/")
        return f"{base}/job?pandaid={job.panda_id}"


def status_receiver(options: PandaOptions, context: BuildContext) -> Any:
    """The receiver of job status messages, if the section names a broker."""
    if options.status_broker is None:
        return None
    from orchid.notify import config as notify_config
    from orchid.notify.receiver import StatusReceiver

    cfg = context.brokers.get(options.status_broker)
    if cfg is None or not options.status_destination:
        raise ConfigError(
            f"{context.where}: status_broker must name a [brokers.NAME] section and "
            "status_destination the queue PanDA sends job status messages to"
        )
    broker = notify_config.broker(cfg, f"[brokers.{options.status_broker}]")
    return StatusReceiver(
        broker, options.status_destination, name=f"orchid-{options.status_broker}"
    )
