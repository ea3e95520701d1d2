"""The data-manager registry: no posix manager without an explicit root, roots fenced off
the service's own files, and who may use each manager (issue 15, item 2)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from orchid.cli.common import _personal
from orchid.datamgr import registry
from orchid.datamgr.posix import PosixManager
from orchid.errors import ConfigError
from orchid.settings import Settings


def settings(tmp_path: Path, managers: str | None = None, **env: str) -> Settings:
    environ = dict(env)
    if managers is not None:
        path = tmp_path / "managers.toml"
        path.write_text(managers)
        environ["ORCHID_DATA_MANAGERS"] = str(path)
    return Settings.load(env=environ, home=tmp_path / "home")


def test_without_a_root_there_is_no_posix_manager(tmp_path: Path) -> None:
    found = registry.specs(settings(tmp_path))
    assert sorted(found) == ["tapesim"]
    with pytest.raises(ConfigError, match="needs `root`"):
        registry.specs(settings(tmp_path, '[spool]\nkind = "posix"\n'))
    with pytest.raises(ConfigError, match="absolute"):
        registry.specs(settings(tmp_path, '[spool]\nkind = "posix"\nroot = "data"\n'))


def test_data_root_makes_the_built_in_posix_manager(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    configured = registry.load(settings(tmp_path, ORCHID_DATA_ROOT=str(data)))
    mgr = configured.managers["posix"]
    assert isinstance(mgr, PosixManager) and mgr.root == data.resolve()
    assert configured.access["posix"].open


def test_orchid_run_and_up_default_to_a_data_folder_of_their_own(tmp_path: Path) -> None:
    s = _personal(settings(tmp_path))
    assert s.data_root == s.home / "data"
    assert stat.S_IMODE(s.home.joinpath("data").stat().st_mode) == 0o700
    mgr = registry.load(s).managers["posix"]
    assert isinstance(mgr, PosixManager) and mgr.root == (s.home / "data").resolve()


@pytest.mark.parametrize(
    "where",
    ["{tmp}/home", "{tmp}", "/", "{tmp}/home/logs", "{tmp}/home/logs/7", "{tmp}/db"],
)
def test_a_root_holding_the_services_files_is_refused(tmp_path: Path, where: str) -> None:
    (tmp_path / "db").mkdir()
    root = where.format(tmp=tmp_path)
    s = settings(
        tmp_path,
        f'[spool]\nkind = "posix"\nroot = "{root}"\n',
        ORCHID_DB_URL=f"sqlite:///{tmp_path / 'db' / 'orchid.db'}",
    )
    with pytest.raises(ConfigError, match=r"\[spool\]: root"):
        registry.specs(s)


def test_a_root_beside_the_services_files_is_fine(tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    (tmp_path / "home").mkdir()
    s = settings(tmp_path, f'[spool]\nkind = "posix"\nroot = "{tmp_path / "spool"}"\n')
    assert registry.specs(s)["spool"].options["root"] == str((tmp_path / "spool").resolve())
    s = settings(tmp_path, '[spool]\nkind = "posix"\nroot = "/nowhere/at/all"\n')
    with pytest.raises(ConfigError, match="not a folder here"):
        registry.load(s)  # the agents build it: the folder must exist there


def test_users_and_groups_say_who_may_use_a_manager(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        '[tape]\nkind = "tapesim"\nusers = ["alice"]\ngroups = ["physics"]\n'
        '[closed]\nkind = "tapesim"\nusers = []\n',
    )
    found = registry.specs(s)
    tape, closed, free = found["tape"].access, found["closed"].access, found["tapesim"].access
    assert "users" not in found["tape"].options
    assert tape.allows("alice", []) and tape.allows("bob", ["physics"])
    assert not tape.allows("carol", ["chemistry"])
    assert "users alice and members of physics" in tape.refusal("tape", "carol")
    assert not closed.allows("alice", ["physics"]) and "nobody" in closed.refusal("closed", "x")
    assert free.open and free.allows("anyone", [])
    for bad in ('users = "alice"', "groups = [1]", 'users = [""]'):
        with pytest.raises(ConfigError, match="must be a list of names"):
            registry.specs(settings(tmp_path, f'[tape]\nkind = "tapesim"\n{bad}\n'))
