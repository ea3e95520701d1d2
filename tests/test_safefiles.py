"""Opening below a root without following links: what logs and the posix spool rely on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchid.safefiles import (
    LogUnavailable,
    UnsafePath,
    open_dir_beneath,
    open_file_beneath,
    open_log,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "logs"
    (r / "7").mkdir(parents=True)
    (r / "7" / "3.1.out").write_text("hello\n")
    (r / "7" / "3.1.err").write_text("oops\n")
    (tmp_path / "secret").write_text("TOP SECRET\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "3.1.out").write_text("TOP SECRET\n")
    return r


def test_a_plain_file_inside_the_root_opens(root: Path) -> None:
    with open_file_beneath(root, root / "7" / "3.1.out") as fh:
        assert fh.read() == b"hello\n"
    with open_log(root, 3, str(root / "7" / "3.1.out"), "stderr") as fh:
        assert fh.read() == b"oops\n"


def test_a_file_replaced_by_a_link_is_refused(root: Path) -> None:
    err = root / "7" / "3.1.err"
    err.unlink()
    err.symlink_to(root.parent / "secret")
    with pytest.raises(UnsafePath, match="symbolic link"):
        open_file_beneath(root, err)
    with pytest.raises(LogUnavailable, match=r"stderr of job 3 is not available.*symbolic link"):
        open_log(root, 3, str(root / "7" / "3.1.out"), "stderr")


def test_a_file_replaced_by_a_hard_link_is_refused(root: Path) -> None:
    """A job may replace its log by a hard link to a file elsewhere (the kernel allows it
    for files its user owns, whatever folder they are in): the link is inside the root and
    no symbolic link is followed, so only the link count tells."""
    out = root / "7" / "3.1.out"
    out.unlink()
    os.link(root.parent / "secret", out)
    with pytest.raises(UnsafePath, match="1 other hard link"):
        open_file_beneath(root, out)
    with pytest.raises(LogUnavailable, match=r"stdout of job 3 is not available.*hard link"):
        open_log(root, 3, str(out), "stdout")


def test_a_folder_replaced_by_a_link_is_refused(root: Path) -> None:
    (root / "7").rename(root / "7.old")
    (root / "7").symlink_to(root.parent / "elsewhere")
    with pytest.raises(UnsafePath, match="7 is a symbolic link"):
        open_file_beneath(root, root / "7" / "3.1.out")
    with pytest.raises(UnsafePath):
        open_dir_beneath(root, ("7",))


def test_paths_outside_the_root_or_going_up_are_refused(root: Path) -> None:
    for bad in (root.parent / "secret", root / ".." / "secret", root / "7" / ".." / ".." / "x"):
        with pytest.raises(UnsafePath):
            open_file_beneath(root, bad)
    with pytest.raises(UnsafePath):
        open_file_beneath(root, root)


def test_a_fifo_or_a_folder_is_refused_without_hanging(root: Path) -> None:
    os.mkfifo(root / "7" / "9.1.out")
    with pytest.raises(UnsafePath, match="not a regular file"):
        open_file_beneath(root, root / "7" / "9.1.out")
    with pytest.raises(UnsafePath):
        open_file_beneath(root, root / "7")


def test_a_missing_log_is_not_kept(root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_file_beneath(root, root / "7" / "4.1.out")
    with pytest.raises(LogUnavailable, match="no longer kept"):
        open_log(root, 4, str(root / "7" / "4.1.out"), "stdout")


def test_a_root_reached_through_a_link_is_the_operators_choice(root: Path) -> None:
    alias = root.parent / "alias"
    alias.symlink_to(root)
    with open_file_beneath(alias, alias / "7" / "3.1.out") as fh:
        assert fh.read() == b"hello\n"
    # the path as written under the resolved root works too
    with open_file_beneath(alias, root / "7" / "3.1.out") as fh:
        assert fh.read() == b"hello\n"
