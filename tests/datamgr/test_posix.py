"""posix: the data-manager contract, the "completely written" rule, and the root fence."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from orchid.core.states import FileStatus as F
from orchid.datamgr.posix import PosixManager
from orchid.datamgr.tapesim import ManualClock
from orchid.errors import ConfigError, UnknownCollection
from tests.datamgr.contract import DataManagerContract, Harness


class TestPosixContract(DataManagerContract):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> Harness:
        folder = tmp_path / "incoming"
        folder.mkdir()
        sizes = {}
        for k in range(4):
            (folder / f"run{k}.dat").write_bytes(b"x" * (10 + k))
            sizes[f"run{k}.dat"] = 10 + k
        mgr = PosixManager(tmp_path, settle_s=0.0, poll_interval=0.0)
        return Harness(
            mgr, "posix:incoming", sizes, wait=lambda: time.sleep(0.01), starts_on_disk=True
        )


def test_a_file_is_complete_once_it_stopped_changing(tmp_path: Path) -> None:
    clock = ManualClock(time.time())
    mgr = PosixManager(tmp_path, settle_s=5.0, clock=clock)
    (tmp_path / "a.dat").write_bytes(b"123")
    (tmp_path / "b.dat.part").write_bytes(b"1")  # still being written under a temporary name
    (tmp_path / ".hidden").write_bytes(b"1")
    assert [(f.name, f.status) for f in mgr.list_files("posix:.")] == [("a.dat", F.NEW)]
    clock.advance(6.0)
    (listed,) = mgr.list_files("posix:.")
    assert listed.status == F.AVAILABLE and listed.url == (tmp_path / "a.dat").as_uri()


def test_with_a_marker_a_file_is_complete_when_its_marker_exists(tmp_path: Path) -> None:
    mgr = PosixManager(tmp_path, marker=".done", settle_s=3600)
    (tmp_path / "a.dat").write_bytes(b"123")
    assert mgr.list_files("x:.")[0].status == F.NEW
    (tmp_path / "a.dat.done").touch()
    (f,) = mgr.list_files("x:.")
    assert f.name == "a.dat" and f.status == F.AVAILABLE
    mgr.release("x:.", ["a.dat"])
    assert not (tmp_path / "a.dat").exists() and not (tmp_path / "a.dat.done").exists()


def test_poll_reports_new_files_and_the_end_marker(tmp_path: Path) -> None:
    mgr = PosixManager(tmp_path, settle_s=0.0, poll_interval=0.0)
    first = mgr.poll("p:.", None)
    assert first.files == () and not first.sealed
    (tmp_path / "late.dat").write_bytes(b"1")
    (tmp_path / "_END").touch()
    later = mgr.poll("p:.", first.cursor)
    assert [f.name for f in later.files] == ["late.dat"] and later.sealed


def test_paths_outside_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret").mkdir()
    mgr = PosixManager(root)
    for bad in ("p:../secret", f"p:{tmp_path / 'secret'}", "p:nothing-here"):
        with pytest.raises(UnknownCollection):
            mgr.list_files(bad)
    os.symlink(tmp_path / "secret", root / "link")
    with pytest.raises(UnknownCollection):
        mgr.list_files("p:link")


def test_polling_slower_than_files_settle_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        PosixManager(tmp_path, settle_s=1.0, poll_interval=10.0)
