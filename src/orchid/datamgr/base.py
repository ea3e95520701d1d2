"""The data-manager seam (tape, disk, Rucio). Implementations come with the carousel issue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from orchid.core.states import FileStatus


@dataclass(frozen=True)
class FileInfo:
    """A file as the data system knows it."""

    scope: str
    name: str
    size: int
    status: FileStatus


@runtime_checkable
class DataManager(Protocol):
    """Stages collections to a disk endpoint and reports file states as they change."""

    name: str

    def list_files(self, collection: str) -> list[FileInfo]:
        """Every file of a collection with its size and current state."""
        ...

    def stage(self, collection: str, files: Sequence[str] | None = None) -> None:
        """Ask for these files (all when None) to be made available on disk. Idempotent."""
        ...

    def poll(self) -> list[FileInfo]:
        """Files whose state changed since the last call. Never blocks."""
        ...

    def release(self, collection: str, files: Sequence[str]) -> None:
        """The files are no longer needed on disk (processed): unpin or delete them."""
        ...
