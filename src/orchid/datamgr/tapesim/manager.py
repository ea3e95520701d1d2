"""The simulated tape library as a data manager (``tapesim``): demos, tests, benchmarks."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

from orchid.core.states import FileStatus
from orchid.datamgr.base import Changes, FileInfo
from orchid.datamgr.tapesim.library import DatasetSpec, Library
from orchid.datamgr.tapesim.sim import TapeConfig, TapeLibrarySim
from orchid.errors import DataManagerError, UnknownCollection


class TapeSim:
    """A :class:`~orchid.datamgr.base.DataManager` over :class:`TapeLibrarySim`.

    ``clock`` gives simulated seconds (an :class:`AcceleratedClock` to run beside a real
    engine; a :class:`ManualClock` in tests). With ``auto`` set, a dataset the library
    does not hold yet is written to tape on first use with that many files of
    ``auto_size`` bytes on average (sized from its name), so demos need no set-up.
    """

    name = "tapesim"
    poll_interval = 0.0

    def __init__(
        self,
        library: Library,
        config: TapeConfig,
        clock: Callable[[], float],
        *,
        auto: int | None = None,
        auto_size: int = 2 * 10**9,
    ) -> None:
        self.library = library
        self.sim = TapeLibrarySim(library, config)
        self.clock = clock
        self.auto = auto
        self.auto_size = auto_size

    def _files(self, collection: str) -> list[int]:
        found = self.library.datasets.get(collection)
        if found is not None:
            return found
        if self.auto is None or ":" not in collection:
            raise UnknownCollection(
                f"the simulated tape library has no dataset {collection!r}"
                + (
                    f"; it holds {', '.join(sorted(self.library.datasets)[:5])}, ..."
                    if self.library.datasets
                    else ""
                )
            )
        n = self.auto // 2 + zlib.crc32(collection.encode()) % (self.auto + 1)
        indexes = self.library.add(DatasetSpec(collection, n, self.auto_size))
        self.sim.grow()
        return indexes

    def _pick(self, collection: str, files: Sequence[str] | None) -> list[int]:
        indexes = self._files(collection)
        if files is None:
            return indexes
        by_name = self.library.by_name
        missing = [n for n in files if (collection, n) not in by_name]
        if missing:
            raise DataManagerError(
                f"dataset {collection!r} has no file {missing[0]!r}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            )
        return [by_name[(collection, n)] for n in files]

    def _info(self, i: int) -> FileInfo:
        f = self.library.files[i]
        status = self.sim.status(i)
        return FileInfo(f.name, f.size, status, self._url(f.dataset, f.name, status))

    @staticmethod
    def _url(dataset: str, name: str, status: FileStatus) -> str | None:
        return f"tapesim://buffer/{dataset}/{name}" if status == FileStatus.AVAILABLE else None

    def list_files(self, collection: str) -> list[FileInfo]:
        indexes = self._files(collection)
        self.sim.advance(self.clock())
        return [self._info(i) for i in indexes]

    def stage(self, collection: str, files: Sequence[str] | None = None) -> None:
        self.sim.request(self._pick(collection, files), self.clock())

    def poll(self, collection: str, cursor: str | None) -> Changes:
        self._files(collection)
        self.sim.advance(self.clock())
        log = self.sim.logs[collection]
        start = _position(cursor, len(log))
        sizes = self.library
        out = tuple(
            FileInfo(
                c.name,
                sizes.files[sizes.by_name[(collection, c.name)]].size,
                c.status,
                self._url(collection, c.name, c.status),
                c.error,
                c.attempt,
            )
            for c in log[start:]
        )
        return Changes(out, str(len(log)))

    def release(self, collection: str, files: Sequence[str] | None = None) -> None:
        self.sim.release(self._pick(collection, files), self.clock())

    def close(self) -> None:
        """Nothing to release: the library lives in this process."""


def _position(cursor: str | None, end: int) -> int:
    if cursor is None:
        return 0
    try:
        pos = int(cursor)
    except ValueError:
        raise DataManagerError(f"not a tapesim cursor: {cursor!r}") from None
    if not 0 <= pos <= end:
        raise DataManagerError(f"tapesim cursor {pos} is beyond the log ({end} changes)")
    return pos
