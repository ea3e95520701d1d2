"""Opening files below a root folder without following symbolic links out of it.

Jobs write into folders the service later reads (logs) or deletes from (a posix data
manager's spool). A job, or a user who can write there, may replace a file or a folder
with a symbolic link to anything the service can read (``/etc/passwd``, the database).
Resolving a path and then opening it by name leaves a window for such a swap, so these
helpers walk from the root with one ``openat`` per component, each with ``O_NOFOLLOW``:
a link met anywhere below the root is refused, not followed, whenever it was made.

The root itself is the operator's (``ORCHID_HOME/logs``, a data manager's ``root``) and
may be reached through links.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import BinaryIO

from orchid.errors import NotFound, OrchidError

__all__ = [
    "LogUnavailable",
    "UnsafePath",
    "open_dir_beneath",
    "open_file_beneath",
    "open_log",
    "private_folder",
    "relative_parts",
]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class UnsafePath(OrchidError):
    """A path that leaves its root, goes through a symbolic link or is not what was expected."""


def relative_parts(root: Path, path: PurePath) -> tuple[str, ...]:
    """The components of ``path`` below ``root`` (compared as written, or with the root's
    links resolved); refuses ``..`` and paths elsewhere."""
    for base in dict.fromkeys((root, root.resolve())):
        try:
            rel = path.relative_to(base)
        except ValueError:
            continue
        parts = tuple(p for p in rel.parts if p != ".")
        if any(p == ".." or "\0" in p for p in parts):
            break
        return parts
    raise UnsafePath(f"{path} is not inside {root}")


def open_dir_beneath(root: Path, parts: Sequence[str]) -> int:
    """A file descriptor of the folder ``root/parts...``, opened one component at a time
    without following links. The caller closes it.

    Raises :class:`UnsafePath` if a component is a symbolic link or not a folder, and
    FileNotFoundError if one does not exist."""
    fd = os.open(root, _DIR)
    try:
        for i, part in enumerate(parts):
            if part in ("", ".", "..") or "/" in part:
                raise UnsafePath(f"{part!r} is not a folder name")
            try:
                inner = os.open(part, _DIR | _NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    where = "/".join(parts[: i + 1])
                    raise UnsafePath(
                        f"{where} is a symbolic link or not a folder (inside {root})"
                    ) from None
                raise
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file_beneath(root: Path, path: PurePath) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file inside ``root`` reached without
    any symbolic link below ``root``.

    Raises :class:`UnsafePath` when it is not (outside, through a link, a link itself, a
    file with other hard links, a FIFO or a device), FileNotFoundError when it does not
    exist."""
    parts = relative_parts(root, path)
    if not parts:
        raise UnsafePath(f"{path} is the folder {root}, not a file in it")
    folder = open_dir_beneath(root, parts[:-1])
    try:
        try:
            # O_NONBLOCK: opening a FIFO put there must not hang the reader
            fd = os.open(
                parts[-1], os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | _NOFOLLOW, dir_fd=folder
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(f"{path} is a symbolic link") from None
            raise
    finally:
        os.close(folder)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePath(f"{path} is not a regular file")
        if info.st_nlink != 1:
            # a hard link made by whoever could write the folder (a job, to its own log)
            # names a file that may live anywhere on the file system: the database, a key
            raise UnsafePath(f"{path} has {info.st_nlink - 1} other hard link(s)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class LogUnavailable(NotFound):
    """A job's log that cannot be served: gone, or not a plain file inside the log folder."""


def no_log(job_id: int, status: str) -> str:
    """Why a job has no log (no ``log_uri``): what the API and ``orchid logs`` say."""
    if status in ("waiting", "ready", "submitted"):
        return f"job {job_id} ({status}) has no log yet"
    return (
        f"job {job_id} ({status}) has no log: it wrote nothing to stdout or stderr, "
        "or it did not run as a process"
    )


def open_log(log_root: Path, job_id: int, log_uri: str, stream: str) -> BinaryIO:
    """A job's stdout (``log_uri``) or stderr (beside it, ``.err``), opened safely: the one
    way the API, the monitor pages and ``orchid logs`` read logs, since the job that
    wrote them could have replaced them (or their folder) with links to other files."""
    path = Path(log_uri)
    if stream == "stderr":
        path = path.with_suffix(".err")
    try:
        return open_file_beneath(log_root, path)
    except FileNotFoundError:
        raise LogUnavailable(f"the {stream} of job {job_id} is no longer kept") from None
    except UnsafePath as exc:
        raise LogUnavailable(
            f"the {stream} of job {job_id} is not available: {exc} (logs are served only as "
            f"plain files inside the log folder {log_root}, never through links)"
        ) from None
    except OSError as exc:
        raise LogUnavailable(
            f"the {stream} of job {job_id} cannot be read: {exc.strerror}"
        ) from None


def private_folder(path: Path) -> None:
    """Make ``path`` and its missing parents, each 0700 (the service's files are its own)."""
    if path.is_dir():
        return
    private_folder(path.parent)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if not path.is_dir():
            raise
