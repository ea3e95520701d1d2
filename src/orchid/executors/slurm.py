"""Run jobs as Slurm batch jobs, through ``sbatch``, ``squeue``, ``sacct`` and ``scancel``.

- **Submission**: the attempts of one batch that ask for the same resources (and belong to
  one work) become one job array, one ``sbatch --parsable`` call (more than ``array_max``:
  several). Each attempt has a script of its own on the shared folder
  (``<log folder>/<workflow>/<job>.<attempt>.sh``); array task ``i`` runs the ``i``-th.
  sbatch runs with the local executor's allow-list for an environment (:func:`~orchid.
  executors._process.base_env`, plus ``SLURM_CONF`` and ``SBATCH_*``), which the job
  inherits; the script adds the job's own variables. Never the agent's database URL or
  secrets.
- **Durable**: every job is named ``--job-name=<namespace>`` and carries
  ``--comment="orchid <batch>"``; the batch's attempt keys are written to
  ``<log folder>/slurm/<batch>.keys`` before sbatch runs, and each attempt's Slurm id to
  ``<job>.<attempt>.slurm`` after. A new agent handed the same attempts finds them by those
  files (or, if it died between sbatch and writing the ids, by the comment in squeue).
- **Status**: one ``squeue -r -t all --name=<namespace>`` call per ``poll_interval`` for
  every job of this executor. A job squeue no longer shows is looked up in ``sacct`` when
  the cluster keeps accounting, else in the ``jobcomp/filetxt`` file when the agent can
  read it (both found once, from ``scontrol show config``), else in the exit status its
  script wrote to ``<job>.<attempt>.exit``.
- **End states**: COMPLETED and FAILED go by the exit code (and the result file, as
  everywhere); TIMEOUT (or the script's own walltime check), CANCELLED, OUT_OF_MEMORY,
  NODE_FAIL, PREEMPTED, BOOT_FAIL and DEADLINE fail the attempt with a reason that names
  them, and Orchid's retries take over (jobs are ``--no-requeue`` unless ``requeue``).
- **Cancel**: one ``scancel`` for every attempt cancelled together.
- **run_as**: with it (agents run as root), each job is submitted with ``sbatch --uid
  --gid`` of its workflow's OS user (:class:`~orchid.executors.runas.RunAs`, as the local
  executor maps them), and an array holds the jobs of one OS user only. The workflow's
  folder on the shared folder is that user's alone (0700, as the local executor makes it),
  with the attempt's script and args in it; the job writes its logs, result and exit
  status there with umask 077, and Slurm sbatch's output (``slurm-<batch>.out``). What the
  agents decide by (batch keys, Slurm ids) stays in ``<log folder>/slurm/``, root's.
"""

from __future__ import annotations

import logging
import os
import pwd
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from orchid.errors import ConfigError, ExecutorError
from orchid.executors import _process as proc
from orchid.executors._sbatch import (
    ENDED,
    GOING,
    SACCT_FORMAT,
    TRANSIENT,
    SlurmOptions,
    SlurmRecord,
    batch_script,
    end_reason,
    parse_config,
    parse_exit,
    parse_jobcomp,
    parse_sacct,
    parse_squeue,
    resource_options,
    squeue_format,
    task_script,
)
from orchid.executors._updates import Updates, pop_each
from orchid.executors.base import (
    BuildContext,
    ExecutorOptions,
    JobSpec,
    JobUpdate,
    UpdateState,
    Usage,
    WakeUp,
)
from orchid.executors.jobcommand import job_command
from orchid.executors.runas import UMASK, OsUser, RunAs, traversable
from orchid.safefiles import private_folder

__all__ = ["SlurmError", "SlurmExecutor", "SlurmOptions"]

logger = logging.getLogger(__name__)

MISSES_BEFORE_LOST = 3
"""Polls a job may be absent from every record before it is reported lost."""


@dataclass(frozen=True)
class _Chunk:
    """One sbatch call: its options, and the attempts (with their scripts) of its array."""

    options: list[str]
    members: list[tuple[JobSpec, Path]]
    user: OsUser | None = None  # run_as: the OS user of every attempt in it


@dataclass
class _Job:
    spec: JobSpec
    id: str  # "123" or "123_4"; "" until sbatch has answered
    started: bool = False
    misses: int = 0  # polls in a row that found no record of it


class SlurmError(ExecutorError):
    """A Slurm command failed; ``transient`` when trying again later may help."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class SlurmExecutor:
    """Jobs as Slurm batch jobs; see the module docstring."""

    durable = True
    options_model: ClassVar[type[ExecutorOptions]] = SlurmOptions

    @classmethod
    def from_config(cls, options: SlurmOptions, context: BuildContext) -> SlurmExecutor:
        passthrough = [n.strip() for n in context.env_passthrough.split(",") if n.strip()]
        return cls(
            options.shared_dir or context.log_dir,
            options,
            name=context.name,
            wake=context.wake,
            namespace=options.namespace or context.namespace,
            env_passthrough=passthrough,
            run_as=RunAs.parse(options.run_as, context.where),
            home=options.shared_dir or context.home,
        )

    def __init__(
        self,
        log_dir: Path,
        options: SlurmOptions,
        *,
        name: str = "slurm",
        wake: WakeUp | None = None,
        namespace: str = "orchid",
        env_passthrough: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
        run_as: RunAs | None = None,
        home: Path | None = None,
    ) -> None:
        """``run_as``: see the module docstring; ``home``: how far up from ``log_dir`` the
        folders may be opened for the jobs' users to pass (default: its parent)."""
        self.name = name
        self._log_dir = Path(log_dir)
        self._opts = options
        self._ns = namespace
        self._passthrough = tuple(env_passthrough)
        self._clock = clock
        self._run_as = run_as
        # squeue --user: whoever the jobs run as
        self._own = pwd.getpwuid(os.getuid()).pw_name
        users = {self._own}
        if run_as is not None:
            run_as.check(f"executor {name}")
            try:
                traversable(self._log_dir, home or self._log_dir.parent)
            except OSError as exc:
                raise ConfigError(f"cannot prepare the log folder {log_dir}: {exc}") from None
            users |= {u.name for u in run_as.accounts}
        self._users = ",".join(sorted(users))
        self._config = self._detect()
        self._accounting = self._config.get("AccountingStorageType", "").split("/")[-1] not in (
            "",
            "none",
        )
        self._jobcomp = self._jobcomp_file()
        self._jobcomp_seen: dict[str, SlurmRecord] = {}
        self._jobcomp_offset = 0  # what the watcher has read of it
        self._jobcomp_reread = threading.Event()  # adopted jobs: read it from the start
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}  # attempt key → job, until it has ended
        self._backlog: list[_Chunk] = []  # submissions the controller did not answer yet
        self._out = Updates(name, wake, clock)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"orchid-{name}", daemon=True)
        self._thread.start()

    # --- the Executor protocol ---------------------------------------------------------

    def capacity(self) -> int:
        with self._lock:
            return max(0, self._opts.slots - len(self._jobs))

    def submit(self, jobs: Sequence[JobSpec]) -> None:
        """Submit the batch as job arrays; adopted attempts already in Slurm are found.

        A controller that cannot be reached fails the call when nothing was submitted yet
        (the carrier hands the jobs again later); once part of the batch is in Slurm, the
        rest waits here and the watcher submits it when the controller answers again.
        """
        with self._lock:
            if self._closed.is_set():
                raise ExecutorError(f"executor {self.name} is closed")
            # ended: noops, and below the jobs that cannot start
            fresh, ended = self._out.sort_out(jobs, self._jobs)
        found = self._find([s for s in fresh if s.adopted])
        # one array: one work, the same resources and one OS user (a work's jobs share a
        # workflow, but works of several workflows may have one name)
        groups: dict[tuple[OsUser | None, tuple[str, ...]], list[tuple[JobSpec, Path]]] = {}
        for spec in fresh:
            if spec.key in found:
                continue
            try:
                user = self._os_user(spec)
                script = self._write_task(spec, user)
            except proc.StartError as exc:
                ended.append(self._out.make(spec, "failed", error=str(exc)))
                continue
            options = (spec.work_name, *resource_options(spec.resources, self._opts))
            groups.setdefault((user, options), []).append((spec, script))
        chunks = [
            _Chunk(list(options[1:]), members[i : i + self._opts.array_max], user)
            for (user, options), members in groups.items()
            for i in range(0, len(members), self._opts.array_max)
        ]
        with self._lock:
            for spec in (s for s in fresh if s.key in found):
                self._jobs[spec.key] = _Job(spec, found[spec.key])
            for chunk in chunks:  # in flight (capacity, cancel) before Slurm has them
                for spec, _ in chunk.members:
                    self._jobs[spec.key] = _Job(spec, "")
        try:
            for n, chunk in enumerate(chunks):
                try:
                    ended += self._submit_chunk(chunk)
                except SlurmError:
                    if n > 0:
                        with self._lock:
                            self._backlog += chunks[n:]
                        break
                    with self._lock:  # nothing in Slurm: the carrier hands them again
                        for c in chunks:
                            for spec, _ in c.members:
                                self._jobs.pop(spec.key, None)
                    raise
        finally:
            self._out.push(*ended)
        logger.debug("%s: submitted %d chunks, found %d", self.name, len(chunks), len(found))

    def _submit_chunk(self, chunk: _Chunk) -> list[JobUpdate]:
        """sbatch one chunk (its attempts still wanted); the updates of those Slurm refused.
        Raises a transient :class:`SlurmError` when the controller does not answer."""
        with self._lock:
            members = [
                (s, p)
                for s, p in chunk.members
                if (job := self._jobs.get(s.key)) is not None and not job.id
            ]
        if not members:
            return []
        try:
            ids = self._sbatch(chunk.options, members, chunk.user)
        except SlurmError as exc:
            if exc.transient:
                raise
            with self._lock:
                for spec, _ in members:
                    self._jobs.pop(spec.key, None)
            return [self._out.make(s, "failed", error=str(exc)) for s, _ in members]
        cancelled: list[str] = []
        with self._lock:
            for (spec, _), job_id in zip(members, ids, strict=True):
                job = self._jobs.get(spec.key)
                if job is None:
                    cancelled.append(job_id)  # cancelled while sbatch ran
                else:
                    job.id = job_id
        if cancelled:
            self._scancel(cancelled)
        return []

    def poll(self) -> list[JobUpdate]:
        return self._out.drain()

    def cancel(self, keys: Sequence[str]) -> None:
        """scancel these jobs; each reports failed, ``cancelled``."""
        with self._lock:
            stopped = pop_each(self._jobs, keys)
        self._scancel([j.id for j in stopped if j.id])
        for job in stopped:
            self._out.push(self._out.make(job.spec, "failed", error="cancelled"))

    def close(self) -> None:
        """Stop watching; the jobs stay in Slurm for the next agent to adopt."""
        self._closed.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=self._opts.command_timeout + self._opts.poll_interval)

    # --- talking to Slurm --------------------------------------------------------------

    def _scancel(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        try:
            self._run("scancel", *ids)
        except SlurmError:
            logger.warning("%s: cannot cancel %s", self.name, list(ids))

    def _run(
        self,
        command: str,
        *args: str,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        program = str(self._opts.bin_dir / command) if self._opts.bin_dir else command
        try:
            done = subprocess.run(
                [program, *args],
                input=stdin,
                env=None if env is None else dict(env),
                capture_output=True,
                text=True,
                timeout=self._opts.command_timeout,
                check=False,
            )
        except FileNotFoundError:
            raise SlurmError(
                f"executor {self.name}: {program} not found; install the Slurm client "
                "commands or set bin_dir",
                transient=False,
            ) from None
        except subprocess.TimeoutExpired:
            raise SlurmError(
                f"executor {self.name}: {command} took over {self._opts.command_timeout:g}s",
                transient=True,
            ) from None
        if done.returncode != 0:
            message = done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}"
            raise SlurmError(
                f"Slurm refused it: {proc.truncate(message)}",
                transient=bool(TRANSIENT.search(message)),
            )
        return done.stdout

    def _detect(self) -> dict[str, str]:
        """``scontrol show config``: proves the controller answers, and says what keeps
        records of ended jobs."""
        try:
            return parse_config(self._run("scontrol", "show", "config"))
        except SlurmError as exc:
            raise ConfigError(
                f"executor {self.name}: cannot reach the Slurm controller ({exc}); check that "
                "slurmctld runs and that this host has its slurm.conf (or SLURM_CONF)"
            ) from None

    def _jobcomp_file(self) -> Path | None:
        if self._config.get("JobCompType", "").split("/")[-1] != "filetxt":
            return None
        path = Path(self._config.get("JobCompLoc", ""))
        return path if path.is_absolute() and os.access(path, os.R_OK) else None

    def _sbatch(
        self, options: list[str], chunk: Sequence[tuple[JobSpec, Path]], user: OsUser | None
    ) -> list[str]:
        """Submit one array (or one job), as ``user`` when one is given; the Slurm ids of
        its attempts, in order."""
        batch = uuid.uuid4().hex[:12]
        folder = self._log_dir / "slurm"
        private_folder(folder)
        _write_new(folder / f"{batch}.keys", "".join(s.key + "\n" for s, _ in chunk))
        # sbatch's output is written as the job's user: in a folder of that user's
        output = chunk[0][1].parent / f"slurm-{batch}.out" if user else folder / f"{batch}.out"
        argv = [
            "--parsable",
            f"--job-name={self._ns}",
            f"--comment=orchid {batch}",
            "--export=ALL",  # of sbatch's environment, which is the allow-list
            f"--output={output}",
            "--open-mode=append",
            f"--chdir={output.parent}",
            *options,
        ]
        if user is not None:
            argv += [f"--uid={user.uid}", f"--gid={user.gid}"]
        if len(chunk) > 1:
            argv.append(f"--array=0-{len(chunk) - 1}")
        script = batch_script([p for _, p in chunk])
        out = self._run("sbatch", *argv, stdin=script, env=self._sbatch_env(user))
        array_job = out.strip().split(";")[0]
        if not array_job.isdigit():
            raise SlurmError(f"sbatch answered {out.strip()!r}, not a job id", transient=False)
        ids = [array_job] if len(chunk) == 1 else [f"{array_job}_{i}" for i in range(len(chunk))]
        for (spec, _), job_id in zip(chunk, ids, strict=True):
            _write_new(self._id_file(spec), job_id)
        return ids

    def _id_file(self, spec: JobSpec) -> Path:
        """Where an attempt's Slurm id is kept: beside its logs, or with run_as in a folder
        of the agents' (a job must not name another user's job for the agent to cancel)."""
        if self._run_as is None:
            return self._files(spec).out.with_suffix(".slurm")
        folder = self._log_dir / "slurm" / str(spec.workflow_id)
        private_folder(folder)
        return folder / f"{spec.job_id}.{spec.attempt}.slurm"

    def _user_name(self, spec: JobSpec) -> str | None:
        """The name of the OS user the attempt's job runs as (None: run_as has none)."""
        try:
            user = self._os_user(spec)
        except proc.StartError:
            return None
        return user.name if user is not None else self._own

    def _os_user(self, spec: JobSpec) -> OsUser | None:
        """The OS user the job runs as (None: as we do); StartError if run_as has none."""
        return proc.job_user(self._run_as, spec)

    def _sbatch_env(self, user: OsUser | None = None) -> dict[str, str]:
        """sbatch's environment, which the job inherits (``--export=ALL``): the local
        executor's allow-list (with ``user``'s HOME, USER and LOGNAME), and what sbatch
        itself reads (``SLURM_CONF``, ``SBATCH_*``).
        Not ``--export=NONE``: that makes slurmd load the user's login environment for every
        job (seconds each), which is no allow-list either."""
        env = proc.base_env(self._passthrough, user)
        for name, value in os.environ.items():
            if name == "SLURM_CONF" or name.startswith("SBATCH_"):
                env[name] = value
        return env

    def _write_task(self, spec: JobSpec, user: OsUser | None = None) -> Path:
        """The attempt's script on the shared folder (its files made afresh; with ``user``,
        in a folder of that user's alone)."""
        command = job_command(spec, python=self._opts.python)
        files = self._files(spec)
        files.prepare(spec.args, user)
        env = {
            **proc.base_env(self._passthrough, user),
            **proc.job_variables(spec, files),
            **command.env,
        }
        proc.check_no_nul(command.argv, env)
        _exit_file(files).unlink(missing_ok=True)
        self._id_file(spec).unlink(missing_ok=True)
        script = files.out.with_suffix(".sh")
        text = task_script(
            command.argv,
            env,
            out=files.out,
            err=files.err,
            exit_file=_exit_file(files),
            cwd=files.out.parent,
            workdir=spec.payload.workdir,
            walltime_s=spec.resources.walltime_s,
            umask=UMASK if user is not None else None,
        )
        try:
            _write_new(script, text, user)  # the job reads it as its user
        except OSError as exc:
            raise proc.StartError(f"cannot write {script}: {exc.strerror}") from exc
        return script

    def _squeue(self) -> dict[str, SlurmRecord]:
        out = self._run(
            "squeue",
            "--noheader",
            "--array",
            "--states=all",
            f"--name={self._ns}",
            f"--user={self._users}",
            f"--Format={squeue_format()}",
        )
        return parse_squeue(out)

    def _find(self, specs: Sequence[JobSpec]) -> dict[str, str]:
        """Adopted attempts already submitted: key → Slurm id."""
        found: dict[str, str] = {}
        lost: list[JobSpec] = []
        for spec in specs:
            job_id = _read_small(self._id_file(spec)).strip()
            if job_id:
                found[spec.key] = job_id
            else:
                lost.append(spec)
        if lost:  # an agent that died between sbatch and writing the ids: by the comment,
            # of a job of the attempt's own OS user only (with run_as, squeue lists the jobs
            # of users who may name a job of theirs "orchid" and comment it with any batch)
            wanted = {s.key: self._user_name(s) for s in lost}
            batches: dict[str, list[str]] = {}
            for record in self._squeue().values():
                batch = record.comment.removeprefix("orchid ").strip()
                if batch not in batches:
                    batches[batch] = self._batch_keys(batch)
                keys = batches[batch]
                array_job = record.id.split("_")[0]
                for i, key in enumerate(keys):
                    if key in wanted and record.user == wanted[key]:
                        found[key] = array_job if len(keys) == 1 else f"{array_job}_{i}"
        if found and self._jobcomp is not None:
            self._jobcomp_reread.set()  # their ends may be in what was read already
        return found

    def _batch_keys(self, batch: str) -> list[str]:
        if not batch or "/" in batch:
            return []
        return _read_small(self._log_dir / "slurm" / f"{batch}.keys", 1 << 20).split()

    # --- following the jobs ------------------------------------------------------------

    def _watch(self) -> None:
        while not self._closed.wait(self._opts.poll_interval):
            try:
                self._flush()
                self._sync()
            except Exception:
                logger.warning("%s: cannot query Slurm; trying again", self.name, exc_info=True)

    def _flush(self) -> None:
        """Submit what the controller did not take earlier, oldest first."""
        while True:
            with self._lock:
                if not self._backlog:
                    return
                chunk = self._backlog[0]
            self._out.push(*self._submit_chunk(chunk))  # raises while it still cannot
            with self._lock:
                self._backlog.pop(0)

    def _sync(self) -> None:
        with self._lock:
            watched = {j.id: j for j in self._jobs.values() if j.id}
        if not watched:
            return
        records = self._squeue()
        gone = [i for i in watched if i not in records]
        if gone:
            records.update(self._ended_records(gone))
        for job_id, job in watched.items():
            record = records.get(job_id)
            if record is None:
                self._missing(job)
            elif record.state in GOING and not job.started:
                job.started = True
                log_uri = str(self._files(job.spec).out)
                self._out.push(self._out.make(job.spec, "running", log_uri=log_uri))
            elif record.state in ENDED:
                self._jobcomp_seen.pop(job_id, None)
                self._finish(job, self._ended(job.spec, record))

    def _ended_records(self, ids: Sequence[str]) -> dict[str, SlurmRecord]:
        """What sacct or the jobcomp file says of jobs squeue no longer shows."""
        if self._accounting:
            try:
                out = self._run(
                    "sacct", "-X", "-n", "-P", f"--format={SACCT_FORMAT}", "-j", ",".join(ids)
                )
                return parse_sacct(out)
            except SlurmError:
                logger.warning("%s: sacct failed", self.name, exc_info=True)
        if self._jobcomp is not None:
            wanted = set(ids)
            with self._lock:
                wanted |= {j.id for j in self._jobs.values()}
            new = parse_jobcomp(self._jobcomp_lines(self._jobcomp))
            self._jobcomp_seen.update({k: v for k, v in new.items() if k in wanted})
            return {i: self._jobcomp_seen.pop(i) for i in ids if i in self._jobcomp_seen}
        return {}

    def _jobcomp_lines(self, path: Path) -> Iterator[str]:
        """The whole lines of the jobcomp file not read yet (streamed: it may be large)."""
        if self._jobcomp_reread.is_set():
            self._jobcomp_reread.clear()
            self._jobcomp_offset = 0
        try:
            with path.open("rb") as f:
                f.seek(self._jobcomp_offset)
                for raw in f:
                    if not raw.endswith(b"\n"):
                        return  # being written: read next time
                    self._jobcomp_offset += len(raw)
                    yield raw.decode(errors="replace")
        except OSError:
            logger.warning("%s: cannot read %s", self.name, path, exc_info=True)

    def _missing(self, job: _Job) -> None:
        """A job no record shows: its script's exit file says how it ended, or after a few
        polls it is lost."""
        status = parse_exit(_read_small(_exit_file(self._files(job.spec))))
        if status is not None:
            state = "FAILED" if status.code else "COMPLETED"
            record = SlurmRecord(job.id, "TIMEOUT" if status.walltime else state, status.code)
            self._finish(job, self._ended(job.spec, record))
            return
        job.misses += 1
        if job.misses >= MISSES_BEFORE_LOST:
            self._finish(
                job,
                self._out.make(
                    job.spec,
                    "failed",
                    error=f"Slurm job {job.id} is gone and left no exit status (ended while "
                    "no agent watched it, and the cluster keeps no accounting)",
                ),
            )

    def _ended(self, spec: JobSpec, record: SlurmRecord) -> JobUpdate:
        files = self._files(spec)
        status = parse_exit(_read_small(_exit_file(files)))
        walltime = status is not None and status.walltime
        reason = end_reason(record, spec.resources.walltime_s, walltime)
        code = record.exit_code
        if code is None and status is not None:
            code = status.code
        usage, began = Usage(), None
        if status is not None and status.began is not None and status.ended is not None:
            usage, began = Usage(wall_s=max(0.0, status.ended - status.began)), status.began
        result = None
        if reason is not None:
            error: str | None = reason
        elif record.signal:
            code, error = -record.signal, f"killed by signal {proc.signal_name(record.signal)}"
        else:
            error = proc.exit_message(code or 0, files.err)
            if error is None:
                result, error = proc.read_result(files)
        state: UpdateState = "failed" if error else "succeeded"
        log_uri = str(files.out) if files.out.exists() else None
        return self._out.make(
            spec,
            state,
            exit_code=code,
            result=result,
            error=error,
            log_uri=log_uri,
            usage=usage,
            started_at=began,
        )

    def _finish(self, job: _Job, update: JobUpdate) -> None:
        self._out.push_end(self._lock, self._jobs, job.spec.key, job, update)

    def _files(self, spec: JobSpec) -> proc.AttemptFiles:
        return proc.AttemptFiles.for_job(self._log_dir, spec)


def _exit_file(files: proc.AttemptFiles) -> Path:
    return files.out.with_suffix(".exit")


def _read_small(path: Path, most: int = 4096) -> str:
    """A small file of ours in a folder jobs write to ("" when it is missing): never
    through a link a job left there, nor blocking on a pipe."""
    try:
        with proc.open_regular(path) as f:
            return f.read(most).decode(errors="replace")
    except OSError:
        return ""


def _write_new(path: Path, text: str, user: OsUser | None = None) -> None:
    """Write a file of ours (mode 0600; ``user``'s when one is given) in a folder jobs
    write to: a new file, never through a link a job left in its place."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        if user is not None:
            os.fchown(fd, user.uid, user.gid)
        f.write(text)
