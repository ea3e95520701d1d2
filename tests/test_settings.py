"""The settings file (TOML) and how it combines with ORCHID_* variables and flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchid.errors import ConfigError
from orchid.settings import Settings

GOOD = """
executor = "cluster"
workers = 3
poll_interval = 2

[executors.cluster]
type = "dask"
address = "tcp://10.0.0.5:8786"

[executors.grid]
type = "panda"
url = "https://panda.example.org:25443/server/panda"
site = "BNL"

[executors.batch]
type = "htcondor"

[brokers.mq]
type = "stomp"
port = 61613

[notify.ops]
broker = "mq"
destination = "/topic/orchid"
events = ["workflow.*"]

[notify.portal]
url = "https://portal.example.org/hook"
secret = "s3cret"
"""


def load(tmp_path: Path, text: str, **env: str) -> Settings:
    (tmp_path / "settings.toml").write_text(text)
    return Settings.load(env={"ORCHID_HOME": str(tmp_path), **env})


def test_a_settings_file_names_executors_brokers_and_subscribers(tmp_path: Path) -> None:
    s = load(tmp_path, GOOD)
    assert s.settings_file == tmp_path / "settings.toml"
    assert s.executor == "cluster" and s.workers == 3 and s.poll_interval == 2.0
    assert s.executor_names == {"local", "null", "cluster", "grid", "batch"}
    assert s.executor_config("cluster").options["address"] == "tcp://10.0.0.5:8786"
    assert s.executor_config("local").type == "local"
    assert set(s.brokers) == {"mq"} and set(s.notify) == {"ops", "portal"}
    assert s.notify["portal"].type == "webhook" and s.notify["ops"].type == "stomp"


def test_environment_and_flags_override_the_file(tmp_path: Path) -> None:
    s = load(tmp_path, GOOD, ORCHID_WORKERS="5", ORCHID_EXECUTOR="grid")
    assert (s.workers, s.executor) == (5, "grid")
    (tmp_path / "settings.toml").write_text(GOOD)
    s = Settings.load(env={"ORCHID_HOME": str(tmp_path)}, executor="local")
    assert s.executor == "local"


def test_orchid_settings_names_the_file(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('executor = "null"\n')
    s = Settings.load(env={"ORCHID_HOME": str(tmp_path), "ORCHID_SETTINGS": str(other)})
    assert s.executor == "null" and s.settings_file == other
    with pytest.raises(ConfigError, match="no settings file"):
        Settings.load(env={"ORCHID_HOME": str(tmp_path), "ORCHID_SETTINGS": str(tmp_path / "no")})


def test_no_file_is_fine(tmp_path: Path) -> None:
    s = Settings.load(env={"ORCHID_HOME": str(tmp_path)})
    assert s.settings_file is None and s.executor_names == {"local", "null"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("executor = [1", "not valid TOML"),
        ("wrokers = 2", r"unknown setting\(s\) wrokers"),
        ('workers = "two"', "`workers` must be a whole number"),
        ('executor = "nowhere"', "unknown executor 'nowhere'"),
        ("[executors.x]\naddress = 'y'", r"\[executors.x\]: `type` is required"),
        ("[executors.x]\ntype = 'slurm'", "unknown executor type 'slurm'"),
        (
            "[executors.x]\ntype = 'dask'\nadress = 'y'",
            r"\[executors.x\]: adress is not a known key",
        ),
        ("[executors.x]\ntype = 'panda'", r"\[executors.x\]: url is required"),
        ("[executors.x]\ntype = 'dask'\nslots = 0", "slots Input should be greater"),
        ("[notify.n]\nbroker = 'mq'\ndestination = '/topic/t'", "broker 'mq' is not a"),
        ("[notify.n]\nurl = 'ftp://x'", "url String should match"),
        ("[notify.n]\nurl = 'http://x'\nsecret_env = 'ORCHID_NO_SUCH_VAR'", "which is not set"),
        ("[brokers.b]\ntype = 'amqp'", "unknown broker type 'amqp'"),
        ("executors = 3", "must be a table"),
    ],
)
def test_mistakes_name_the_file_section_and_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        load(tmp_path, text)
    if "TOML" not in expected:
        assert "settings.toml" in str(caught.value) or "unknown executor" in str(caught.value)


def test_request_limits_have_defaults_and_are_set_like_any_setting(tmp_path: Path) -> None:
    s = load(tmp_path, "")
    assert (s.max_works, s.max_request_bytes) == (10_000, 256 * 1024 * 1024)
    s = load(tmp_path, "max_works = 50\n", ORCHID_MAX_REQUEST_BYTES="4096")
    assert (s.max_works, s.max_request_bytes) == (50, 4096)
    with pytest.raises(ConfigError, match="max_works must be at least 1"):
        load(tmp_path, "", ORCHID_MAX_WORKS="0")
    with pytest.raises(ConfigError, match="max_request_bytes"):
        load(tmp_path, 'max_request_bytes = "big"\n')
