"""``posix``: a folder is a collection; each file that appears in it, completely written,
becomes available at once ("process each file as it lands").

When is a file completely written? The rule, in order:

1. Names starting with ``.`` or ending with ``.part``, ``.tmp``, ``.partial`` or ``~``
   are never data: write to such a name, then rename into place (atomic on one file
   system) and the file is complete the moment it has its final name.
2. With ``marker`` set (say ``.done``), a file is complete once ``NAME.done`` exists
   beside it; marker files are not data.
3. Otherwise a file is complete once it has not changed for ``settle_s`` seconds (its
   status-change time, which a write or a rename into the folder moves).

The folder's end marker (``_END`` by default) says no more files will come: the
collection is then sealed, and its work ends once every file is processed. Without
it, the work follows the folder until the user asks the workflow to ``finish``.

Collections are ``scope:path``; the scope is ignored and the path is relative to the
manager's ``root``, a folder given explicitly in the data-manager file and dedicated to
data. A path may not be absolute nor contain ``..``; after links are resolved it must
still be inside ``root``, and every read and delete then walks from ``root`` without
following links (:mod:`orchid.safefiles`), so a folder swapped for a link after the check
is refused rather than followed. ``release`` deletes only the regular files it is named
(those the engine listed for that collection) and their markers, nothing else; only
works that say ``delete_after: processed`` release.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath

from orchid.core.states import FileStatus
from orchid.datamgr.base import Changes, FileInfo
from orchid.errors import ConfigError, DataManagerError, UnknownCollection
from orchid.safefiles import UnsafePath, open_dir_beneath

log = logging.getLogger(__name__)
TEMPORARY = (".part", ".tmp", ".partial", "~")


def collection_problem(collection: str) -> str | None:
    """Why a collection cannot name a folder under a posix root (None: it can).

    Checked where the template is submitted, before any folder is looked at: an absolute
    path or ``..`` is refused whatever the disk holds."""
    _, sep, rel = collection.partition(":")
    rel = rel if sep else collection
    if not rel.strip():
        return "names no folder; give a path relative to the manager's root ('.' for the root)"
    if "\0" in rel:
        return "contains a NUL character"
    if rel.startswith("/"):
        return f"{rel!r} is absolute; give a path relative to the manager's root"
    if ".." in PurePosixPath(rel).parts:
        return f"{rel!r} goes up with '..'; give a path inside the manager's root"
    return None


class PosixManager:
    """Folders under ``root`` as collections."""

    name = "posix"

    def __init__(
        self,
        root: Path,
        *,
        settle_s: float = 2.0,
        marker: str | None = None,
        end_marker: str = "_END",
        poll_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if poll_interval > settle_s + 1:
            raise ConfigError("posix: poll_interval may be at most settle_s + 1 seconds")
        self.root = Path(root).resolve()
        self.settle_s = settle_s
        self.marker = marker
        self.end_marker = end_marker
        self.poll_interval = poll_interval
        self.clock = clock

    def folder(self, collection: str) -> Path:
        """The folder of a collection, refusing paths that leave ``root`` (also through links)."""
        _, sep, rel = collection.partition(":")
        rel = rel if sep else collection
        problem = collection_problem(collection)
        if problem:
            raise UnknownCollection(f"collection {collection!r}: {problem}")
        path = (self.root / rel).resolve()
        if path != self.root and self.root not in path.parents:
            raise UnknownCollection(
                f"collection {collection!r} leads outside the posix root {self.root} "
                "(through a symbolic link); use a folder inside it"
            )
        if not path.is_dir():
            raise UnknownCollection(f"no folder {path} (collection {collection!r})")
        return path

    @contextlib.contextmanager
    def _opened(self, collection: str) -> Iterator[tuple[Path, int]]:
        """The collection's folder and a descriptor of it, reached from ``root`` without
        following any link: a folder swapped for a link after :meth:`folder` checked it is
        refused, never followed."""
        path = self.folder(collection)
        try:
            fd = open_dir_beneath(self.root, path.relative_to(self.root).parts)
        except UnsafePath as exc:
            raise UnknownCollection(f"collection {collection!r}: {exc}") from None
        except FileNotFoundError:
            raise UnknownCollection(f"no folder {path} (collection {collection!r})") from None
        except OSError as exc:
            raise DataManagerError(f"cannot read {path}: {exc.strerror}") from None
        try:
            yield path, fd
        finally:
            os.close(fd)

    def _is_data(self, name: str) -> bool:
        if name.startswith(".") or name.endswith(TEMPORARY) or name == self.end_marker:
            return False
        return not (self.marker and name.endswith(self.marker))

    def _scan(self, collection: str) -> tuple[list[tuple[FileInfo, int]], bool]:
        """(file, change time in ns) for each data file, and whether the end marker is there."""
        now_ns = int(self.clock() * 1e9)
        settle_ns = int(self.settle_s * 1e9)
        out: list[tuple[FileInfo, int]] = []
        names: set[str] = set()
        ended = False
        with self._opened(collection) as (folder, fd):
            try:
                with os.scandir(fd) as it:
                    entries = list(it)
            except OSError as exc:
                raise DataManagerError(f"cannot read {folder}: {exc.strerror}") from None
            for e in entries:
                names.add(e.name)
                ended = ended or e.name == self.end_marker
            for e in entries:
                if not self._is_data(e.name):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed meanwhile
                if not stat.S_ISREG(st.st_mode):
                    continue  # links, folders, FIFOs are never data
                changed = st.st_ctime_ns
                if self.marker:
                    done = e.name + self.marker in names
                    if done:
                        try:
                            mark = os.stat(e.name + self.marker, dir_fd=fd, follow_symlinks=False)
                            changed = max(changed, mark.st_ctime_ns)
                        except FileNotFoundError:
                            done = False
                else:
                    done = now_ns - changed >= settle_ns
                status = FileStatus.AVAILABLE if done else FileStatus.NEW
                url = (folder / e.name).as_uri() if done else None
                out.append((FileInfo(e.name, st.st_size, status, url), changed))
        return out, ended

    def list_files(self, collection: str) -> list[FileInfo]:
        files, _ = self._scan(collection)
        return sorted((f for f, _ in files), key=lambda f: f.name)

    def stage(self, collection: str, files: Sequence[str] | None = None) -> None:
        """Files in a folder are on disk already: nothing to do."""
        with self._opened(collection):
            pass

    def poll(self, collection: str, cursor: str | None) -> Changes:
        """Files complete since the cursor (a change time), new files, and the end marker.

        The cursor trails the scan by ``settle_s`` so that a file completing in between
        two scans is reported by the later one; a file reported twice is harmless."""
        files, ended = self._scan(collection)
        since = int(cursor) if cursor else -1
        out = tuple(sorted((f for f, changed in files if changed > since), key=lambda f: f.name))
        horizon = int((self.clock() - 2 * self.settle_s - 1.0) * 1e9)
        return Changes(out, str(max(since, horizon)), sealed=ended)

    def release(self, collection: str, files: Sequence[str] | None = None) -> None:
        """Delete processed files (and their markers); the whole folder is left alone.

        Only plain data files directly in the collection's folder are deleted, through a
        descriptor of that folder: a name with a ``/``, or a file replaced by a link or a
        folder since it was listed, is left where it is (a link is never followed)."""
        if files is None:
            return
        with self._opened(collection) as (folder, fd):
            for name in files:
                if not self._is_data(name) or "/" in name or "\0" in name or name in ("", ".."):
                    log.warning("collection %s: not deleting %r: not a data file", collection, name)
                    continue
                self._unlink(fd, folder, name)
                if self.marker:
                    self._unlink(fd, folder, f"{name}{self.marker}")

    @staticmethod
    def _unlink(fd: int, folder: Path, name: str) -> None:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise DataManagerError(f"cannot delete {folder / name}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            log.warning("not deleting %s: no longer a plain file (a link?)", folder / name)
            return
        try:
            # unlinkat removes the entry itself: were it swapped for a link just now, the
            # link would go, never what it points to
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise DataManagerError(f"cannot delete {folder / name}: {exc.strerror}") from None

    def close(self) -> None:
        """Nothing is held open."""
