"""Run jobs on PanDA through panda-client: one JEDI task per work, its jobs held until released.

The model is the one iDDS uses for Rubin's DAGs (``domapandawork``), with what the real
panda-server accepts:

- **A task per work, every job known up front.** When the carrier hands over the first
  job of a work it first gives the executor the work's plan (every job id and how many
  attempts each may take: :class:`~orchid.executors.base.WorkPlan`). The executor makes
  the task ``<namespace>.<workflow>.<work>.<work id>`` (``insertTaskParams``) with one
  pseudo-input file per possible attempt, ``j<job id>.<attempt>`` (``noInput``,
  ``pfnList``, ``nFilesPerJob = 1``) and ``inputPreStaging``: JEDI makes no job for a
  file until it is reported staged. (Re-submitting a task name with new files, which the
  fake server of old allowed, makes a new task on a real one.)
- **Release.** When Orchid hands over an attempt (its parents have succeeded), the
  executor uploads the attempt's command line to the PanDA cache and sends JEDI's message
  processor the ``file_processing`` message iDDS sends (``relation_type: input``, the
  file ``Available``) on ``release_broker``/``release_destination``; JEDI marks the file
  staged and its message-driven contents feeder and job generator make the job at once.
  When a work has ended in Orchid (the carrier says so), its files never released (the
  children of a failed parent, which Orchid skipped; attempts not needed) are reported
  ``Missing``, so JEDI ends the task; a cancelled work's task is killed (``killTask``).
- **Retries.** Orchid retries; PanDA does not (``maxAttempt = 1``). Orchid's attempt *n*
  of a job is the task's file ``j<job>.<n>``, so PanDA's job for it is attempt 1 of that
  file and the monitor shows the Orchid attempt in the file name.
- **Jobs without a plan** (attempts beyond the planned ones, an executor used without a
  carrier, or no release broker configured) get a task of their own,
  ``<namespace>.<workflow>.<work>.<job>.<attempt>``, not held.
- **Payload.** Every task's ``transPath`` is :mod:`orchid.executors.pandajob`, uploaded
  once to the PanDA cache under its content hash: a standard-library Python script that a
  pilot downloads and runs with ``--cache URL --prefix P <file>``; it fetches
  ``<P>.<file>.json`` (the attempt's argv, variables and folder) and runs it. The
  result comes back as the job's metadata (the pilot's ``jobReport.json``), failures as
  the payload's exit code and diagnostics and the pilot's error code
  (:func:`~orchid.executors._panda_api.failure`).
- **Following**, in batches: per task with attempts PanDA has made no job for yet,
  ``getPandaIDsWithTaskID`` (and ``getTaskStatus``: a broken or aborted task fails them);
  the jobs followed, ``getJobStatus`` for up to 500 ids a call. With ``status_broker``
  set, PanDA's job and task status messages (STOMP) say which jobs to look at the moment
  they change; ``poll_interval`` is the fallback that catches a lost message.
- **Abort**: ``killJobs`` for the attempts cancelled (an attempt released but not yet made
  into a job is killed when it appears); ``killTask`` for a task of its own.
- **Restart**: the plan finds the task by name (``get_tasks_detailed_info_since``),
  adopted attempts find their job by file name before anything is released again.

Tested against a real panda-server and JEDI with a stand-in pilot
(tests/executors/test_panda_real.py); docs/architecture.md, "Executors that plan".
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from orchid.errors import ConfigError, ExecutorError
from orchid.executors import _process as proc
from orchid.executors import pandajob
from orchid.executors._panda_api import (
    DEAD_TASK,
    FAILED,
    RUNNING,
    TASK_ID,
    PandaOptions,
    as_int,
    cache_of,
    failure,
    file_message,
    panda_client,
    pseudo_input,
    result_of,
    status_call,
    task_params,
    usage_of,
)
from orchid.executors._updates import Updates, pop_each
from orchid.executors.base import (
    BuildContext,
    ExecutorOptions,
    JobSpec,
    JobUpdate,
    Resources,
    UpdateState,
    WakeUp,
    WorkPlan,
)
from orchid.executors.jobcommand import job_command

logger = logging.getLogger(__name__)
BATCH = 500  # job ids per getJobStatus call
RESEND_S = 3.0  # a release JEDI has not acted on after this long is looked at and sent again


class Releases(Protocol):
    """Where release messages go (a :class:`orchid.notify.stomp.StompSender`)."""

    def send_json(self, batch: Sequence[tuple[Mapping[str, Any], Mapping[str, str]]]) -> None: ...

    def close(self) -> None: ...


def file_name(job_id: int, attempt: int) -> str:
    return f"j{job_id}.{attempt}"


@dataclass(eq=False)  # one per task: compared and hashed by identity
class _Task:
    name: str
    prefix: str  # of its cache files: <prefix>.<file>.json
    held: bool  # made with inputPreStaging: files wait for their release
    files: set[str]
    task_id: int | None = None
    released: set[str] = field(default_factory=set)
    ids: dict[str, int] = field(default_factory=dict)  # file → PanDA job id, as found
    sent: dict[str, float] = field(default_factory=dict)  # file → when its release was sent
    seen: set[int] = field(default_factory=set)  # PanDA job ids already described


@dataclass
class _Job:
    spec: JobSpec
    task: _Task
    lfn: str
    panda_id: int | None = None
    started: bool = False
    kill: bool = False


class PandaExecutor:
    """Jobs as PanDA jobs of one JEDI task per work; see the module docstring."""

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
            releases=release_sender(options, context),
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
        releases: Releases | None = None,
    ) -> None:
        self.name = name
        self._log_dir = Path(log_dir)
        self._opts = options
        self._ns = namespace
        self._clock = clock
        self._client = panda_client(options)
        self._job_status = status_call(self._client)
        self._lock = threading.Lock()
        self._tasks: dict[str, _Task] = {}  # by name
        self._planned: dict[int, _Task] = {}  # job id → its work's task
        self._work_tasks: dict[int, _Task] = {}  # work id → its task
        self._jobs: dict[str, _Job] = {}  # attempt key → job, until it has ended
        self._to_kill: dict[str, _Job] = {}  # cancelled before PanDA made their job
        self._out = Updates(name, wake, clock)
        self._closed = threading.Event()
        self._kick = threading.Event()
        self._flagged: set[int] = set()  # PanDA job ids a status message named
        self._flagged_tasks: set[int] = set()
        self._uploads = ThreadPoolExecutor(4, thread_name_prefix=f"orchid-{name}-upload")
        self._trans_path: str | None = None
        self._releases = releases
        self._messages = status_messages
        if status_messages is not None:
            status_messages.start(self._on_message)
        self._thread = threading.Thread(target=self._watch, name=f"orchid-{name}", daemon=True)
        self._thread.start()

    # --- the Executor protocol ---------------------------------------------------------

    def capacity(self) -> int:
        with self._lock:
            return max(0, self._opts.slots - len(self._jobs))

    def plan(self, works: Sequence[WorkPlan]) -> None:
        """Make (or find again) the task of each work, with every attempt held."""
        if self._releases is None:
            return  # nothing could release a held job: every attempt is a task of its own
        for work in works:
            if work.payload_kind == "noop" or work.resources.gpus or not work.jobs:
                continue
            name = f"{self._ns}.{work.workflow_id}.{work.work_name}.{work.work_id}"
            task = self._tasks.get(name)
            if task is None:
                files = [file_name(j, a) for j, most in work.jobs for a in range(1, most + 1)]
                task = _Task(name, _prefix(name), True, set(files))
                task.task_id = self._lookup(name)
                if task.task_id is None:
                    task.task_id = self._insert(name, files, work.resources, task.prefix, True)
                self._tasks[name] = task
            self._work_tasks[work.work_id] = task
            for job_id, _ in work.jobs:
                self._planned[job_id] = task

    def works_ended(self, works: Mapping[int, str]) -> None:
        """Close the tasks of works that ended: report their unreleased files missing."""
        for work_id, status in works.items():
            task = self._work_tasks.pop(work_id, None)
            if task is None or task.task_id is None:
                continue
            # those still held: JEDI's own record (after a restart this executor has not
            # seen every release, and JEDI marks any file missing that it is told is)
            staging = self._file_states(task)
            missing = sorted(f for f, state in staging.items() if state == "staging")
            if status == "cancelled":
                self._client.killTask(task.task_id)
            elif missing:
                self._release(task, dict.fromkeys(missing, "Missing"))
            self._tasks.pop(task.name, None)
            for job_id in [j for j, t in self._planned.items() if t is task]:
                del self._planned[job_id]

    def submit(self, jobs: Sequence[JobSpec]) -> None:
        """Release these attempts (their commands to the cache, then JEDI's message)."""
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
        entries: dict[str, tuple[JobSpec, dict[str, Any]]] = {}
        for spec in (s for s in fresh if not s.resources.gpus):
            try:
                entries[spec.key] = (spec, self._entry(spec))
            except proc.StartError as exc:
                ended.append(self._out.make(spec, "failed", error=str(exc)))
        placed = [self._place(spec) for spec, _ in entries.values()]
        found = self._find([job for job in placed if job.spec.adopted])
        todo = [job for job in placed if job.spec.key not in found]
        self._upload_commands([(job, entries[job.spec.key][1]) for job in todo])
        for task, group in _by_task(todo).items():
            if task.held:
                self._release(task, {job.lfn: "Available" for job in group})
            else:
                task.task_id = self._insert(
                    task.name, [group[0].lfn], group[0].spec.resources, task.prefix, False
                )
                task.released.add(group[0].lfn)
        with self._lock:
            for job in [*found.values(), *todo]:
                self._jobs[job.spec.key] = job
        self._kick.set()
        self._out.push(*ended)

    def poll(self) -> list[JobUpdate]:
        return self._out.drain()

    def cancel(self, keys: Sequence[str]) -> None:
        """Kill these attempts' PanDA jobs (a task of their own: the task)."""
        with self._lock:
            stopped = pop_each(self._jobs, keys)
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
        for job in stopped:
            if not job.task.held and job.task.task_id is not None:
                self._client.killTask(job.task.task_id)
        for job in stopped:
            self._out.push(self._out.make(job.spec, "failed", error="cancelled"))

    def close(self) -> None:
        """Stop following; the jobs go on in PanDA for the next agent to adopt."""
        self._closed.set()
        self._kick.set()
        if self._messages is not None:
            self._messages.stop()
        self._thread.join(timeout=30)
        self._uploads.shutdown(wait=True)
        if self._releases is not None:
            self._releases.close()

    # --- submission --------------------------------------------------------------------

    def _place(self, spec: JobSpec) -> _Job:
        """The task and file of an attempt: its work's, else a task of its own."""
        lfn = file_name(spec.job_id, spec.attempt)
        task = self._planned.get(spec.job_id)
        if task is None or lfn not in task.files:
            name = f"{self._ns}.{spec.workflow_id}.{spec.work_name}.{spec.job_id}.{spec.attempt}"
            task = self._tasks.get(name) or _Task(name, _prefix(name), False, {lfn})
            self._tasks[name] = task
        return _Job(spec, task, lfn)

    def _entry(self, spec: JobSpec) -> dict[str, Any]:
        command = job_command(spec, python=self._opts.python)
        env = proc.job_env(spec)
        env.update(command.env)
        return {"argv": command.argv, "env": env, "workdir": spec.payload.workdir}

    def _put(self, name: str, data: bytes) -> None:
        """Upload a file to the PanDA cache; one already there under that name is fine
        (names are content hashes or one attempt's, written once)."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_bytes(data)
            status, message = self._client.putFile(str(path), useCacheSrv=True)
        if status == 0 and (message == "True" or "cannot overwrite" in str(message)):
            return
        raise ExecutorError(f"executor {self.name}: cannot upload {name} to the cache: {message}")

    def _upload_commands(self, jobs: list[tuple[_Job, dict[str, Any]]]) -> None:
        data = [
            (f"{job.task.prefix}.{job.lfn}.json", json.dumps(entry, sort_keys=True).encode())
            for job, entry in jobs
        ]
        list(self._uploads.map(lambda item: self._put(*item), data))

    def _wrapper(self) -> str:
        """The task's transPath: pandajob.py in the PanDA cache, named by its hash."""
        if self._trans_path is None:
            source = Path(pandajob.__file__).read_bytes()
            name = f"orchid-pandajob-{hashlib.sha256(source).hexdigest()[:16]}.py"
            self._put(name, source)
            self._trans_path = f"{cache_of(self._opts)}/cache/{name}"
        return self._trans_path

    def _insert(
        self, task: str, files: list[str], resources: Resources, prefix: str, held: bool
    ) -> int:
        params = task_params(
            task,
            files,
            resources,
            self._opts,
            trans_path=self._wrapper(),
            prefix=prefix,
            held=held,
        )
        status, out = self._client.insertTaskParams(params)
        if status != 0 or not isinstance(out, tuple) or out[0] != 0:
            raise ExecutorError(f"executor {self.name}: PanDA refused task {task}: {out}")
        found = TASK_ID.search(str(out[1]))
        if found is None:
            raise ExecutorError(f"executor {self.name}: no jediTaskID in PanDA's answer: {out[1]}")
        return int(found.group(1))

    def _release(self, task: _Task, files: dict[str, str]) -> None:
        """Tell JEDI these files of a held task are staged (or missing)."""
        if self._releases is None or task.task_id is None:
            raise ExecutorError(f"executor {self.name}: cannot release jobs of {task.name}")
        self._releases.send_json([(file_message(task.task_id, files), {})])
        task.released.update(files)
        now = time.monotonic()
        task.sent.update(dict.fromkeys(files, now))

    def _release_again(self, waiting: list[_Job]) -> None:
        """Releases JEDI did not act on: a message that came before JEDI had made the
        task's files (a task just made) or that was lost. Files still ``staging`` after
        ``RESEND_S`` are released again (a release is idempotent)."""
        now = time.monotonic()
        late = [
            j
            for j in waiting
            if j.task.held and now - j.task.sent.get(j.lfn, now) > RESEND_S and not j.kill
        ]
        for task, group in _by_task(late).items():
            if task.task_id is None:
                continue
            states = self._file_states(task)
            staging = {f for f, state in states.items() if state == "staging"}
            again = {j.lfn: "Available" for j in group if j.lfn in staging}
            if again:
                logger.info("%s: releasing %d jobs of %s again", self.name, len(again), task.name)
                self._release(task, again)
            for job in group:  # looked at: not again before RESEND_S
                task.sent[job.lfn] = now

    def _file_states(self, task: _Task) -> dict[str, str]:
        """The task's pseudo-input files and their JEDI status, in one call."""
        if task.task_id is None:
            return {}
        status, found = self._client.get_files_in_datasets(task.task_id, "pseudo_input")
        if status != 0 or not isinstance(found, list):
            return {}
        return {
            str(f["lfn"]).rsplit(":", 1)[-1]: str(f.get("status"))
            for ds in found
            for f in ds.get("files") or []
        }

    def _lookup(self, name: str) -> int | None:
        """The newest task of that name, if any."""
        status, found = self._client.get_tasks_detailed_info_since(filters={"taskName": name})
        if status != 0 or found is None:
            raise ExecutorError(f"executor {self.name}: cannot look up task {name}: {found}")
        ids = [int(t["jediTaskID"]) for t in found if str(t.get("taskName")) == name]
        return max(ids) if ids else None

    def _find(self, jobs: Sequence[_Job]) -> dict[str, _Job]:
        """Adopted attempts PanDA already has a job for (or that are already released)."""
        out: dict[str, _Job] = {}
        for task, group in _by_task(jobs).items():
            if task.task_id is None:
                task.task_id = self._lookup(task.name)
                if task.task_id is None:
                    continue
                task.released = set(task.files)  # a task of its own exists: it was released
            self._map_jobs(task)
            for job in group:
                job.panda_id = task.ids.get(job.lfn)
                if job.panda_id is not None or (not task.held and job.lfn in task.released):
                    out[job.spec.key] = job
        return out

    def _map_jobs(self, task: _Task) -> None:
        """Which PanDA job is which file, for the task's jobs not seen yet."""
        if task.task_id is None:
            return
        status, got = self._client.getPandaIDsWithTaskID(task.task_id)
        if status != 0 or got is None:
            raise ExecutorError(f"executor {self.name}: cannot list the jobs of {task.name}")
        new = {int(i) for i in got} - task.seen
        for desc in self._describe(new):
            lfn = pseudo_input(desc)
            if lfn:
                task.ids[lfn] = int(desc.PandaID)
            task.seen.add(int(desc.PandaID))

    def _states(self, ids: list[int]) -> dict[int, str]:
        """PanDA job id → its status, for many jobs a call (``unknown`` if not found)."""
        out: dict[int, str] = {}
        for i in range(0, len(ids), BATCH):
            batch = ids[i : i + BATCH]
            status, got = self._job_status(batch)
            if status != 0 or not isinstance(got, list) or len(got) != len(batch):
                raise ExecutorError(f"executor {self.name}: cannot get the status of PanDA jobs")
            for panda_id, item in zip(batch, got, strict=True):
                out[panda_id] = str((item or {}).get("status") or "unknown")
        return out

    def _describe(self, ids: Iterable[int]) -> list[Any]:
        ids = sorted(set(ids))
        jobs: list[Any] = []
        for i in range(0, len(ids), BATCH):
            status, specs = self._client.getJobStatus(ids[i : i + BATCH])
            if status != 0 or specs is None:
                raise ExecutorError(f"executor {self.name}: cannot get the status of PanDA jobs")
            jobs += [j for j in specs if j is not None]
        return jobs

    # --- following ---------------------------------------------------------------------

    def _on_message(self, message: dict[str, Any]) -> None:
        """PanDA's job and task status messages: look at those jobs (tasks) now."""
        kind = message.get("msg_type")
        try:
            if kind == "job_status":
                with self._lock:
                    self._flagged.add(int(message["jobid"]))
            elif kind == "task_status":
                with self._lock:
                    self._flagged_tasks.add(int(message["taskid"]))
            else:
                return
        except (KeyError, TypeError, ValueError):
            return
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
            waiting = [j for j in live if j.panda_id is None] + list(self._to_kill.values())
            flagged, self._flagged = self._flagged, set()
            flagged_tasks, self._flagged_tasks = self._flagged_tasks, set()
        if not live and not waiting:
            return
        for task in _by_task(waiting):  # which jobs PanDA made: one call per task
            self._map_jobs(task)
        to_kill: list[int] = []
        for job in waiting:
            job.panda_id = job.task.ids.get(job.lfn)
            if job.panda_id is not None and job.kill:
                to_kill.append(job.panda_id)
                with self._lock:
                    self._to_kill.pop(job.spec.key, None)
        if to_kill:
            self._client.killJobs(to_kill)
        known = [j for j in live if j.panda_id is not None]
        if not everything:
            known = [j for j in known if j.panda_id in flagged or j.task.task_id in flagged_tasks]
        by_id = {j.panda_id: j for j in known if j.panda_id is not None}
        states = self._states(list(by_id))
        ended: list[int] = []
        for panda_id, job in by_id.items():
            state = states[panda_id]
            if state in RUNNING:
                if not job.started:
                    job.started = True
                    self._out.push(self._out.make(job.spec, "running", log_uri=self._log(job)))
            elif state == "finished" or state in FAILED or state == "unknown":
                ended.append(panda_id)  # its details say how (unknown: look where it is)
        for desc in self._describe(ended):
            seen = by_id.get(int(desc.PandaID))
            if seen is not None:
                self._observe(seen, desc)
        still = [j for j in live if j.panda_id is None]
        self._release_again(still)
        self._check_tasks(still)

    def _check_tasks(self, waiting: list[_Job]) -> None:
        """Attempts PanDA made no job for: fail them if their task died."""
        for task, group in _by_task(waiting).items():
            if task.task_id is None:
                continue
            status, state = self._client.getTaskStatus(task.task_id)
            if status == 0 and state in DEAD_TASK:
                for job in group:
                    self._finish(
                        job,
                        self._out.make(
                            job.spec, "failed", error=f"PanDA task {task.task_id} is {state}"
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


def _prefix(task: str) -> str:
    return "orchid-" + hashlib.sha256(task.encode()).hexdigest()[:20]


def _by_task(jobs: Iterable[_Job]) -> dict[_Task, list[_Job]]:
    out: dict[_Task, list[_Job]] = {}
    for job in jobs:
        out.setdefault(job.task, []).append(job)
    return out


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


def release_sender(options: PandaOptions, context: BuildContext) -> Releases | None:
    """The sender of release messages to JEDI, if the section names a broker."""
    if options.release_broker is None:
        return None
    from orchid.notify import config as notify_config
    from orchid.notify.stomp import StompSender

    cfg = context.brokers.get(options.release_broker)
    if cfg is None or not options.release_destination:
        raise ConfigError(
            f"{context.where}: release_broker must name a [brokers.NAME] section and "
            "release_destination the queue JEDI's message processor takes iDDS's "
            "file_processing messages from"
        )
    broker = notify_config.broker(cfg, f"[brokers.{options.release_broker}]")
    return StompSender(broker, options.release_destination, name="orchid-panda-release")
