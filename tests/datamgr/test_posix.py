"""posix: the data-manager contract, the "completely written" rule, and the root fence."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from orchid.core.states import FileStatus as F
from orchid.datamgr.posix import PosixManager, collection_problem
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


@pytest.mark.parametrize(
    ("collection", "why"),
    [
        ("p:../outside", "'..'"),
        ("inbox/../../outside", "'..'"),
        ("/etc", "absolute"),
        ("p:/etc", "absolute"),
        ("p:", "names no folder"),
        ("p:a\0b", "NUL"),
    ],
)
def test_paths_are_checked_before_any_folder_is_read(
    tmp_path: Path, collection: str, why: str
) -> None:
    problem = collection_problem(collection)
    assert problem is not None and why in problem
    with pytest.raises(UnknownCollection, match=f"collection {re.escape(repr(collection))}"):
        PosixManager(tmp_path).list_files(collection)
    assert collection_problem("p:inbox/run1") is None and collection_problem(".") is None


def spool(tmp_path: Path) -> tuple[PosixManager, Path, Path]:
    """A root with inbox/a.dat, b.dat; outside it, a folder of the service with a.dat."""
    root, outside = tmp_path / "root", tmp_path / "service"
    (root / "inbox").mkdir(parents=True)
    outside.mkdir()
    for name in ("a.dat", "b.dat"):
        (root / "inbox" / name).write_text("data")
    (outside / "a.dat").write_text("the service's file")
    (outside / "b.dat").write_text("the service's file")
    return PosixManager(root, settle_s=0.0, poll_interval=0.0), root, outside


def test_links_inside_the_root_are_followed_and_file_links_are_never_data(
    tmp_path: Path,
) -> None:
    mgr, root, outside = spool(tmp_path)
    (root / "latest").symlink_to(root / "inbox")  # stays inside: fine
    (root / "inbox" / "c.dat").symlink_to(outside / "a.dat")
    assert [f.name for f in mgr.list_files("p:latest")] == ["a.dat", "b.dat"]
    (root / "out").symlink_to(outside)
    with pytest.raises(UnknownCollection, match="collection 'p:out' leads outside"):
        mgr.list_files("p:out")
    with pytest.raises(UnknownCollection):
        mgr.release("p:out", ["a.dat"])
    assert (outside / "a.dat").exists()


def test_a_folder_swapped_for_a_link_after_the_check_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mgr, root, outside = spool(tmp_path)
    assert [f.name for f in mgr.list_files("p:inbox")] == ["a.dat", "b.dat"]
    checked = mgr.folder("p:inbox")
    # between the check of the path and its use, the folder becomes a link out of the root
    (root / "inbox").rename(root / "inbox.old")
    (root / "inbox").symlink_to(outside)
    monkeypatch.setattr(mgr, "folder", lambda collection: checked)
    with pytest.raises(UnknownCollection, match="symbolic link"):
        mgr.release("p:inbox", ["a.dat", "b.dat"])
    with pytest.raises(UnknownCollection, match="symbolic link"):
        mgr.list_files("p:inbox")
    assert (outside / "a.dat").exists() and (outside / "b.dat").exists()


def test_a_file_swapped_for_a_link_after_listing_is_not_deleted_through_it(
    tmp_path: Path,
) -> None:
    mgr, root, outside = spool(tmp_path)
    listed = [f.name for f in mgr.list_files("p:inbox")]
    (root / "inbox" / "a.dat").unlink()
    (root / "inbox" / "a.dat").symlink_to(outside / "a.dat")
    mgr.release("p:inbox", [*listed, "../../service/b.dat", ".hidden", "_END"])
    assert (outside / "a.dat").read_text() == "the service's file"
    assert (outside / "b.dat").read_text() == "the service's file"
    assert (root / "inbox" / "a.dat").is_symlink()  # left where it is
    assert not (root / "inbox" / "b.dat").exists()  # a plain listed file: deleted
