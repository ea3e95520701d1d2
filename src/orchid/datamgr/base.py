"""The data-manager seam: what the engine needs from a data system (tape, disk, Rucio).

A data manager knows collections (datasets, folders) and their files. The engine asks it
to list a collection, to stage files to a disk endpoint, to report files whose state
changed, and to release files once they are processed. It holds no policy: which files
to stage, when to retry a failed one and when to delete are the engine's decisions, kept
in the store. Implementations: :mod:`~orchid.datamgr.tapesim` (a simulated tape
library), :mod:`~orchid.datamgr.posix` (a folder) and :mod:`~orchid.datamgr.rucio`.

Collections are named ``scope:name`` (a Rucio DID; for a folder, ``scope:path``).
Every call is idempotent, so an agent that died half-way simply calls again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from orchid.core.model import FileInfo

__all__ = ["Changes", "DataManager", "FileInfo", "split_collection"]


@dataclass(frozen=True)
class Changes:
    """Files of one collection whose state changed after ``cursor``, and the next cursor.

    A manager may report a file more than once (the engine applies changes
    idempotently); it must not skip one. Polling again with an old cursor returns
    the same changes again, so a crash between a poll and its commit loses nothing.
    """

    files: tuple[FileInfo, ...]
    cursor: str
    # no file will be added to the collection any more (a folder that may still receive
    # files says False until its end marker appears)
    sealed: bool = True


@runtime_checkable
class DataManager(Protocol):
    """A data system: lists collections, stages files to disk, reports their state."""

    name: str
    poll_interval: float  # seconds between two polls of one collection (0: every round)

    def list_files(self, collection: str) -> list[FileInfo]:
        """Every file of a collection with its size and current state.

        Raises :class:`~orchid.errors.UnknownCollection` if there is no such collection."""
        ...

    def stage(self, collection: str, files: Sequence[str] | None = None) -> None:
        """Ask for these files (every file when None) to be brought to disk.

        Idempotent: files already staging or on disk are left as they are; a file whose
        last attempt failed is tried again."""
        ...

    def poll(self, collection: str, cursor: str | None) -> Changes:
        """Changes after ``cursor`` (from the start when None), including files that
        appeared in a collection that grows. Never blocks for long."""
        ...

    def release(self, collection: str, files: Sequence[str] | None = None) -> None:
        """These files (the whole collection when None) are no longer needed on disk:
        unpin or delete them. A manager whose pin covers a whole collection (a Rucio
        rule) may wait for the call with None. Idempotent."""
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...


def split_collection(collection: str) -> tuple[str, str]:
    """``scope:name`` → (scope, name); refuses what is not of that form."""
    scope, sep, name = collection.partition(":")
    if not sep or not scope or not name:
        from orchid.errors import UnknownCollection

        raise UnknownCollection(f"a collection is named scope:name; got {collection!r}")
    return scope, name
