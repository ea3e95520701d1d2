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
manager's ``root`` (no ``..``, no absolute paths outside it). ``release`` deletes the
files (a spool folder); only works that say ``delete_after: processed`` release.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from orchid.core.states import FileStatus
from orchid.datamgr.base import Changes, FileInfo
from orchid.errors import ConfigError, DataManagerError, UnknownCollection

TEMPORARY = (".part", ".tmp", ".partial", "~")


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
        """The folder of a collection, refusing paths that leave ``root``."""
        _, sep, rel = collection.partition(":")
        rel = rel if sep else collection
        path = (self.root / rel).resolve()
        if path != self.root and self.root not in path.parents:
            raise UnknownCollection(f"{rel!r} is outside the posix root {self.root}")
        if not path.is_dir():
            raise UnknownCollection(f"no folder {path} (collection {collection!r})")
        return path

    def _is_data(self, name: str) -> bool:
        if name.startswith(".") or name.endswith(TEMPORARY) or name == self.end_marker:
            return False
        return not (self.marker and name.endswith(self.marker))

    def _scan(self, folder: Path) -> tuple[list[tuple[FileInfo, int]], bool]:
        """(file, change time in ns) for each data file, and whether the end marker is there."""
        now_ns = int(self.clock() * 1e9)
        settle_ns = int(self.settle_s * 1e9)
        out: list[tuple[FileInfo, int]] = []
        names: set[str] = set()
        ended = False
        try:
            entries = list(os.scandir(folder))
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
            if not e.is_file(follow_symlinks=False):
                continue
            changed = st.st_ctime_ns
            if self.marker:
                done = e.name + self.marker in names
                if done:
                    try:
                        changed = max(changed, os.stat(folder / (e.name + self.marker)).st_ctime_ns)
                    except FileNotFoundError:
                        done = False
            else:
                done = now_ns - changed >= settle_ns
            status = FileStatus.AVAILABLE if done else FileStatus.NEW
            url = (folder / e.name).as_uri() if done else None
            out.append((FileInfo(e.name, st.st_size, status, url), changed))
        return out, ended

    def list_files(self, collection: str) -> list[FileInfo]:
        files, _ = self._scan(self.folder(collection))
        return sorted((f for f, _ in files), key=lambda f: f.name)

    def stage(self, collection: str, files: Sequence[str] | None = None) -> None:
        """Files in a folder are on disk already: nothing to do."""
        self.folder(collection)

    def poll(self, collection: str, cursor: str | None) -> Changes:
        """Files complete since the cursor (a change time), new files, and the end marker.

        The cursor trails the scan by ``settle_s`` so that a file completing in between
        two scans is reported by the later one; a file reported twice is harmless."""
        files, ended = self._scan(self.folder(collection))
        since = int(cursor) if cursor else -1
        out = tuple(sorted((f for f, changed in files if changed > since), key=lambda f: f.name))
        horizon = int((self.clock() - 2 * self.settle_s - 1.0) * 1e9)
        return Changes(out, str(max(since, horizon)), sealed=ended)

    def release(self, collection: str, files: Sequence[str] | None = None) -> None:
        """Delete processed files (and their markers); the whole folder is left alone."""
        if files is None:
            return
        folder = self.folder(collection)
        for name in files:
            if not self._is_data(name) or "/" in name:
                continue
            (folder / name).unlink(missing_ok=True)
            if self.marker:
                (folder / f"{name}{self.marker}").unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing is held open."""
