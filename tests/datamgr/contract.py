"""The contract every data manager must honour, as a reusable test base class.

Subclass :class:`DataManagerContract` and give it a ``harness`` fixture: a
:class:`Harness` with a fresh manager, one collection of known files (none on disk
yet, unless the manager only knows files on disk) and a way to let time pass. No test
asserts a duration: waits are deadlines that fail only when something is stuck.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest

from orchid.core.states import FileStatus
from orchid.datamgr.base import Changes, DataManager, FileInfo
from orchid.errors import DataManagerError, UnknownCollection

F = FileStatus
REPORTED = {F.NEW, F.STAGING, F.AVAILABLE, F.FAILED, F.DELETED}


@dataclass
class Harness:
    manager: DataManager
    collection: str  # scope:name
    sizes: Mapping[str, int]  # its files
    wait: Callable[[], None]  # let a little time pass (a clock step, a short sleep)
    deadline_s: float = 60.0
    starts_on_disk: bool = False  # a folder: files are there before anything is staged
    released_status: set[FileStatus] = field(default_factory=lambda: {F.DELETED, F.NEW})


def follow(h: Harness, until: Callable[[dict[str, FileInfo]], bool]) -> dict[str, FileInfo]:
    """Poll from the start, applying changes in order, until ``until(latest)`` holds."""
    latest: dict[str, FileInfo] = {}
    cursor: str | None = None
    end = time.monotonic() + h.deadline_s
    while time.monotonic() < end:
        changes = h.manager.poll(h.collection, cursor)
        assert isinstance(changes, Changes)
        for f in changes.files:
            assert f.status in REPORTED, f
            latest[f.name] = f
        cursor = changes.cursor
        if until(latest):
            return latest
        h.wait()
    pytest.fail(
        f"not reached in {h.deadline_s}s; latest: {sorted((n, str(f.status)) for n, f in latest.items())}"
    )


def all_available(names: set[str]) -> Callable[[dict[str, FileInfo]], bool]:
    return lambda latest: all(n in latest and latest[n].status == F.AVAILABLE for n in names)


class DataManagerContract:
    """Behaviour the engine relies on. ``harness`` is provided by the subclass."""

    def test_it_is_a_data_manager(self, harness: Harness) -> None:
        assert isinstance(harness.manager, DataManager)
        assert harness.manager.poll_interval >= 0

    def test_lists_every_file_with_its_size(self, harness: Harness) -> None:
        listed = harness.manager.list_files(harness.collection)
        assert {f.name: f.size for f in listed} == dict(harness.sizes)
        expected = {F.AVAILABLE} if harness.starts_on_disk else {F.NEW, F.STAGING, F.AVAILABLE}
        assert all(f.url for f in listed if f.status == F.AVAILABLE)
        assert {f.status for f in listed} <= expected

    def test_an_unknown_collection_is_refused(self, harness: Harness) -> None:
        with pytest.raises(UnknownCollection):
            harness.manager.list_files(harness.collection + "-no-such-thing")
        with pytest.raises(DataManagerError):
            harness.manager.stage(harness.collection + "-no-such-thing")

    def test_staged_files_become_available_with_a_url(self, harness: Harness) -> None:
        h = harness
        h.manager.stage(h.collection)
        h.manager.stage(h.collection)  # idempotent
        latest = follow(h, all_available(set(h.sizes)))
        assert all(f.url for f in latest.values())
        assert {f.size for f in latest.values()} <= set(h.sizes.values())
        assert {f.status for f in h.manager.list_files(h.collection)} == {F.AVAILABLE}

    def test_staging_some_files_stages_those(self, harness: Harness) -> None:
        h = harness
        some = sorted(h.sizes)[:2]
        h.manager.stage(h.collection, some)
        follow(h, all_available(set(some)))

    def test_polling_again_from_an_old_cursor_replays_the_changes(self, harness: Harness) -> None:
        h = harness
        h.manager.stage(h.collection)
        follow(h, all_available(set(h.sizes)))
        first = h.manager.poll(h.collection, None)
        again = h.manager.poll(h.collection, None)
        assert {f.name for f in first.files if f.status == F.AVAILABLE} == set(h.sizes)
        assert {f.name for f in again.files if f.status == F.AVAILABLE} == set(h.sizes)
        later = h.manager.poll(h.collection, again.cursor)
        assert not [f for f in later.files if f.status == F.FAILED]

    def test_released_files_leave_the_disk(self, harness: Harness) -> None:
        h = harness
        h.manager.stage(h.collection)
        follow(h, all_available(set(h.sizes)))
        gone = sorted(h.sizes)[:1]
        h.manager.release(h.collection, gone)
        h.manager.release(h.collection, gone)  # idempotent
        h.manager.release(h.collection, None)
        h.manager.release(h.collection, None)
        end = time.monotonic() + h.deadline_s
        while time.monotonic() < end:
            now = {f.name: f.status for f in h.manager.list_files(h.collection)}
            if gone[0] not in now or now[gone[0]] in h.released_status:
                return
            h.wait()
        pytest.fail(f"{gone[0]} is still {now.get(gone[0])} after its release")
