"""Process plumbing for the local executor: argv templates, environment, spawn, reap, results.

Kept apart from :mod:`orchid.executors.local` so the thread and queue logic there stays
short, and so each piece can be tested on its own. POSIX only: every job runs in its own
session (and so its own process group), which lets the executor signal a whole process
tree at once, and it is reaped with ``wait4`` to learn what it used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from orchid import jobvars
from orchid.core import jsonvalues, placeholders
from orchid.core.limits import DEFAULT, Limits
from orchid.executors.base import JobSpec, Usage
from orchid.executors.runas import OsUser, RunAs, as_user, own_folder
from orchid.safefiles import private_folder

logger = logging.getLogger(__name__)

ERROR_TEXT_MAX = 300
"""Longest piece of a job's stderr quoted in a failure reason."""

_STDOUT_TAIL = 1024 * 1024  # a result printed on stdout may be this long; larger ones: result file
_STDERR_TAIL = 64 * 1024


class StartError(Exception):
    """A job could not be started; the message is its failure reason, for people."""


def job_user(run_as: RunAs | None, spec: JobSpec) -> OsUser | None:
    """The OS user ``spec`` runs as under ``run_as`` (None: as the agents); StartError,
    the job's failure reason, if run_as maps none for its workflow."""
    if run_as is None:
        return None
    try:
        return run_as.user_for(spec.owner, spec.share_group)
    except LookupError as exc:
        raise StartError(str(exc)) from None


_NUL = "holds a NUL character (\\u0000), which the operating system cannot pass to a program"


def check_no_nul(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Raise StartError naming the argv item or variable that holds a NUL character (one
    that came through a run-time binding: submission refuses them in templates and args)."""
    for i, item in enumerate(argv):
        if "\x00" in item:
            raise StartError(f"item {i} of the command {_NUL}")
    for name, value in env.items():
        if "\x00" in name or "\x00" in value:
            raise StartError(f"environment variable {name.replace(chr(0), '?')!r} {_NUL}")


def render_item(template: str, args: Mapping[str, Any]) -> str:
    """Replace ``{name}`` by the job arg ``name`` in text that is not a shell script (an
    env value, a plain argv item); see :mod:`orchid.core.placeholders`."""
    return placeholders.render_text(template, args)


PYTHON_NAMES = frozenset({"python", "python3"})


ARGS_IN_ENV_MAX = 64 * 1024
"""Longest ``ORCHID_ARGS`` put in the environment (Linux refuses a variable over 128 KiB);
larger arguments are in ``ORCHID_ARGS_FILE`` only."""


@dataclass(frozen=True)
class AttemptFiles:
    """Where one attempt writes: ``<log_dir>/<workflow_id>/<job_id>.<attempt>.<suffix>``
    (the runner's ``log_dir`` is ``ORCHID_HOME/logs/<instance id>``, its database's own).

    The suffixes are ``out`` (stdout), ``err`` (stderr), ``result.json`` (the result file),
    ``args.json`` (the job's arguments; a pool worker writes them to a file of its own
    instead) and ``progress.jsonl`` (intermediate values the job reports, which the HPO
    agent reads while it runs).
    """

    out: Path
    err: Path
    result: Path
    args: Path
    progress: Path

    @classmethod
    def at(cls, log_dir: Path, workflow_id: int, job_id: int, attempt: int) -> AttemptFiles:
        folder, stem = log_dir / str(workflow_id), f"{job_id}.{attempt}"
        return cls(
            folder / f"{stem}.out",
            folder / f"{stem}.err",
            folder / f"{stem}.result.json",
            folder / f"{stem}.args.json",
            folder / f"{stem}.progress.jsonl",
        )

    @classmethod
    def for_job(cls, log_dir: Path, spec: JobSpec) -> AttemptFiles:
        return cls.at(log_dir, spec.workflow_id, spec.job_id, spec.attempt)

    def clear_logs(self) -> None:
        """Remove the logs of an earlier run of this attempt: new ones are written, never
        through an old path (an empty log of a pool worker is a hard link to its folder's
        shared ``.empty``)."""
        self.out.unlink(missing_ok=True)
        self.err.unlink(missing_ok=True)

    def prepare(self, args: Mapping[str, Any] | None = None, user: OsUser | None = None) -> None:
        """Create the directory, drop files left by an earlier run of this attempt, and
        write the job's arguments. With ``user``, the directory is that user's alone and
        nothing is written through a link the user may have put in it."""
        try:
            if user is None:
                try:
                    self.out.parent.mkdir(exist_ok=True)
                except FileNotFoundError:  # the log folder is made on first use, ours alone
                    private_folder(self.out.parent.parent)
                    self.out.parent.mkdir(exist_ok=True)
            else:
                own_folder(self.out.parent, user)
            self.clear_logs()
            self.result.unlink(missing_ok=True)
            self.progress.unlink(missing_ok=True)
            self.args.unlink(missing_ok=True)
            text = json.dumps(dict(args or {})).encode()
            fd = os.open(self.args, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                if user is not None:
                    os.fchown(fd, user.uid, user.gid)
                f.write(text)
        except OSError as exc:
            raise StartError(f"cannot write logs in {self.out.parent}: {exc.strerror}") from exc
        except (TypeError, ValueError) as exc:
            raise StartError(f"job args are not JSON-serialisable: {exc}") from exc


def job_identity(spec: JobSpec) -> dict[str, str]:
    """The variables that tell a job which attempt of which job it is."""
    return {
        jobvars.JOB_KEY: spec.key,
        jobvars.WORKFLOW_ID: str(spec.workflow_id),
        jobvars.JOB_ID: str(spec.job_id),
        jobvars.JOB_NAME: spec.job_name,
        jobvars.ATTEMPT: str(spec.attempt),
        jobvars.WORK: spec.work_name,
    }


def _args_json(spec: JobSpec) -> str:
    try:
        return json.dumps(dict(spec.args))
    except (TypeError, ValueError) as exc:
        raise StartError(f"job args are not JSON-serialisable: {exc}") from exc


def job_env(spec: JobSpec) -> dict[str, str]:
    """The job's own variables, for a node whose environment is not ours (a batch or grid
    job): ``payload.env`` (``{arg}`` rendered), ``spec.env``, :func:`job_identity` and
    ``ORCHID_ARGS``; ``payload.python_path`` as ``PYTHONPATH`` when it has one."""
    env = {k: render_item(v, spec.args) for k, v in spec.payload.env.items()}
    env.update(spec.env)
    env.update(job_identity(spec))
    env[jobvars.ARGS] = _args_json(spec)
    if spec.payload.python_path:
        env["PYTHONPATH"] = os.pathsep.join(spec.payload.python_path)
    return env


ENV_ALLOWED = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME"})
"""The variables of ours a job gets (with every ``LC_*``): never the database URL, tokens,
secrets or settings of the service. Settings add more by name (``env_passthrough``)."""


def base_env(
    passthrough: Collection[str] = (),
    user: OsUser | None = None,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """What a job inherits of our environment: :data:`ENV_ALLOWED`, ``LC_*``, and the names
    in ``passthrough`` (``NAME``, or ``PREFIX*`` for every name that starts so). A job run
    as another OS ``user`` gets that user's ``HOME``, ``USER`` and ``LOGNAME``."""
    source = os.environ if source is None else source
    exact = {n for n in passthrough if not n.endswith("*")}
    prefixes = tuple(n[:-1] for n in passthrough if n.endswith("*"))
    env = {
        k: v
        for k, v in source.items()
        if k in ENV_ALLOWED or k in exact or k.startswith(("LC_", *prefixes))
    }
    env.pop(jobvars.ARGS, None)
    if user is not None:
        env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
    return env


def our_python_path() -> str:
    """The agent's PYTHONPATH, which jobs and pool workers extend."""
    return os.environ.get("PYTHONPATH", "")


def build_env(
    spec: JobSpec,
    files: AttemptFiles,
    extra_path: Sequence[str] = (),
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The job's environment here: ``base`` (default: :func:`base_env` of ours), then
    :func:`job_variables`."""
    ours = base_env() if base is None else base
    return {**ours, **job_variables(spec, files, extra_path)}


def job_variables(
    spec: JobSpec, files: AttemptFiles, extra_path: Sequence[str] = ()
) -> dict[str, str]:
    """What a job's process gets on top of :func:`base_env` (a pool worker sets only this):
    ``payload.env``, ``spec.env``, then the ``ORCHID_*`` variables.

    ``payload.env`` values may name job args as ``{arg}`` (like argv items).
    ``payload.python_path`` goes in front of ``PYTHONPATH``; ``extra_path`` goes at its end.
    """
    args_json = _args_json(spec)
    env = {k: render_item(v, spec.args) for k, v in spec.payload.env.items()}
    env.update(spec.env)
    env.pop(jobvars.ARGS, None)
    env.update(job_identity(spec))
    env[jobvars.ARGS_FILE] = str(files.args)
    env[jobvars.RESULT_FILE] = str(files.result)
    env[jobvars.PROGRESS_FILE] = str(files.progress)
    if len(args_json) <= ARGS_IN_ENV_MAX:
        env[jobvars.ARGS] = args_json  # JSON escapes a NUL: never one here
    check_no_nul((), env)
    base = env.get("PYTHONPATH", our_python_path())
    current = [p for p in base.split(os.pathsep) if p]
    path = [*spec.payload.python_path, *current]
    path += [p for p in extra_path if p not in path]
    if path:
        env["PYTHONPATH"] = os.pathsep.join(path)
    return env


def spawn(
    argv: Sequence[str],
    cwd: str | None,
    env: Mapping[str, str],
    files: AttemptFiles,
    user: OsUser | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session with stdout/stderr in the attempt's files; as the OS
    ``user`` when one is given (its logs then belong to it; see :func:`as_user`).

    Raises :class:`StartError` naming the program (or workdir) when it cannot be started.
    """
    if not argv:
        raise StartError("empty command")
    check_no_nul(argv, env)
    program = argv[0]
    with _log_file(files.out, user) as out, _log_file(files.err, user) as err:
        try:
            return subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                close_fds=True,
                **as_user(user),
            )
        except (FileNotFoundError, NotADirectoryError) as exc:
            if cwd is not None and exc.filename == cwd:
                raise StartError(f"workdir not found: {cwd}") from exc
            raise StartError(f"program not found: {program}") from exc
        except PermissionError as exc:
            if cwd is not None and exc.filename == cwd:
                raise StartError(f"workdir not accessible: {cwd}") from exc
            raise StartError(f"program not executable: {program}") from exc
        except OSError as exc:
            raise StartError(f"cannot start {program}: {exc.strerror or exc}") from exc
        except ValueError as exc:  # what the OS cannot take, if check_no_nul missed it
            raise StartError(f"cannot start {program}: {exc}") from exc
        except subprocess.SubprocessError as exc:  # the switch to the user failed
            raise StartError(f"cannot start {program} as {user_name(user)}: {exc}") from exc


def _log_file(path: Path, user: OsUser | None) -> BinaryIO:
    """A new log opened for writing; owned by ``user`` (mode 0600) when one is given."""
    if user is None:
        return path.open("wb")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchown(fd, user.uid, user.gid)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")


def user_name(user: OsUser | None) -> str:
    return user.name if user is not None else "this user"


def wait(pid: int, started: float, on_exit: Callable[[], None]) -> tuple[int | None, Usage]:
    """Block until ``pid`` exits, call ``on_exit``, reap it; return its wait status and usage.

    Where ``waitid`` exists, ``on_exit`` runs while the child is still an unreaped zombie:
    its pid, and so its process group id, cannot be reused yet, so a cancel that signals
    the group before ``on_exit`` has run cannot hit a stranger. (macOS lacks ``waitid``;
    there ``on_exit`` runs just after reaping, with a tiny window of that risk.) The status
    is None if someone else reaped the child. ``started`` is ``time.monotonic()`` at spawn.
    """
    if hasattr(os, "waitid"):
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        wall_s = time.monotonic() - started
        on_exit()
        status, ru = _wait4(pid)
    else:
        status, ru = _wait4(pid)
        wall_s = time.monotonic() - started
        on_exit()
    if ru is None:
        return status, Usage(wall_s=wall_s)
    rss = ru.ru_maxrss // 1024 if sys.platform == "darwin" else ru.ru_maxrss  # bytes there
    return status, Usage(
        wall_s=wall_s, cpu_user_s=ru.ru_utime, cpu_system_s=ru.ru_stime, max_rss_kb=int(rss)
    )


def _wait4(pid: int) -> tuple[int | None, resource.struct_rusage | None]:
    try:
        _, status, ru = os.wait4(pid, 0)
    except ChildProcessError:
        return None, None
    return status, ru


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def kill_group(pgid: int, signum: int) -> None:
    """Signal every process of a job's group; a group that is already gone is fine."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:  # the job changed its user; nothing we can do from here
        logger.warning("cannot send %s to process group %d: permission denied", signum, pgid)


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading if it is a regular file and not a link: what a job
    leaves for the agent to read may be a link to a file that is not the job's, or a
    pipe that would block (OSError then)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def truncate(text: str, limit: int = ERROR_TEXT_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def last_line(path: Path, tail: int = _STDERR_TAIL) -> str | None:
    """The last non-empty line among the last ``tail`` bytes of a file, or None."""
    try:
        with open_regular(path) as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - tail))
            data = f.read()
    except OSError:
        return None
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > tail and lines:
        lines = lines[1:]  # the first one is probably cut
    for line in reversed(lines):
        if line.strip():
            return line.strip()
    return None


def exit_reason(status: int | None, err_file: Path) -> tuple[int | None, str | None]:
    """Exit code (``-N`` when killed by signal N) and failure reason (None on success)."""
    if status is None:
        return None, "exit status lost (the process was reaped elsewhere)"
    code = os.waitstatus_to_exitcode(status)
    return code, exit_message(code, err_file)


def exit_message(code: int, err_file: Path) -> str | None:
    """Why a job with this exit code failed (None: it did not), quoting its stderr."""
    if code < 0:
        return f"killed by signal {signal_name(-code)}"
    if code == 0:
        return None
    stderr = last_line(err_file)
    return f"exit code {code}: {truncate(stderr)}" if stderr else f"exit code {code}"


def read_result(files: AttemptFiles, limits: Limits = DEFAULT) -> tuple[Any, str | None]:
    """The job's result and an error when it is unusable.

    The result file wins when it exists (invalid JSON there is an error, and so is a file
    over ``limits.result_max_bytes``, found before it is read); otherwise the last
    non-empty stdout line, if it parses as JSON; otherwise None.
    """
    cap = limits.result_max_bytes
    try:
        # not through a link, and never waiting on a FIFO the job put there
        fd = os.open(files.result, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        fd = None
    except OSError as exc:
        return None, f"cannot read result file {files.result}: {exc.strerror}"
    if fd is not None:
        with os.fdopen(fd, "rb") as fh:
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    return None, f"result file {files.result} is not a regular file"
                size = info.st_size
                data = fh.read(cap + 1) if size <= cap else b""
            except OSError as exc:
                return None, f"cannot read result file {files.result}: {exc.strerror}"
        if size > cap or len(data) > cap:  # it may have grown since fstat
            return None, limits.result_too_large(size if size > cap else None)
        try:
            return jsonvalues.loads(data.decode("utf-8")), None
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            return None, truncate(f"result file is not valid JSON: {exc}")
    line = last_line(files.out, min(_STDOUT_TAIL, cap))
    if line is None:
        return None, None
    try:
        return jsonvalues.loads(line), None
    except ValueError:
        return None, None
