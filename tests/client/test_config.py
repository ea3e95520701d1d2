"""Where the client finds its server and token, and how the config file is kept secret."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchid.client import ClientConfig, config_path
from orchid.client.config import read_file, write_file
from orchid.errors import ConfigError


def test_the_file_lives_under_xdg_config_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "orchid" / "config.toml"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".config" / "orchid" / "config.toml"
    assert config_path({}) == expected
    assert config_path({"XDG_CONFIG_HOME": "relative/is/ignored"}) == expected


def test_written_readable_by_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "orchid" / "config.toml"
    old = os.umask(0)
    try:
        write_file(path, "127.0.0.1:8042/", 'orc_"quoted"\\token')
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        path.chmod(0o644)
        write_file(path, "http://127.0.0.1:9000", "orc_second")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temporary left
    stored = read_file(path)
    assert stored is not None and (stored.url, stored.token) == (
        "http://127.0.0.1:9000",
        "orc_second",
    )
    write_file(path, "https://orchid.example.org", 'orc_"quoted"\\token')
    again = read_file(path)
    assert again is not None and again.token == 'orc_"quoted"\\token'
    assert "orc_" not in repr(again)


def test_the_environment_wins_and_tokens_stay_with_their_server(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    assert ClientConfig.load({}, path=path) is None
    write_file(path, "http://127.0.0.1:8042", "orc_file")
    from_file = ClientConfig.load({}, path=path)
    assert from_file == ClientConfig("http://127.0.0.1:8042", "orc_file", source=str(path))
    env = {"ORCHID_URL": "https://orchid.example.org/", "ORCHID_TOKEN": "orc_env"}
    both = ClientConfig.load(env, path=path)
    assert both is not None and (both.url, both.token) == ("https://orchid.example.org", "orc_env")
    # the file's token is for the file's server: never sent elsewhere
    other = ClientConfig.load({"ORCHID_URL": "https://orchid.example.org"}, path=path)
    assert other is not None and other.token is None
    same = ClientConfig.load({"ORCHID_URL": "127.0.0.1:8042"}, path=path)
    assert same is not None and same.token == "orc_file"
    token_only = ClientConfig.load({"ORCHID_TOKEN": "orc_env"}, path=path)
    assert token_only is not None and token_only.token == "orc_env"
    flag = ClientConfig.load(env, url="http://127.0.0.1:8042", path=path)
    assert flag is not None and (flag.url, flag.token, flag.source) == (
        "http://127.0.0.1:8042",
        "orc_env",
        "--url",
    )


def test_bad_configuration_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("url = [1]\n")
    with pytest.raises(ConfigError, match="must be strings"):
        read_file(path)
    path.write_text("url = 'unterminated\n")
    with pytest.raises(ConfigError, match="cannot read the client config"):
        read_file(path)
    with pytest.raises(ConfigError, match="http:// or https://"):
        ClientConfig("ftp://example.org")
    with pytest.raises(ConfigError, match="empty"):
        ClientConfig.load({"ORCHID_URL": "   "}, url=" ", path=path)
