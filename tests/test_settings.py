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
        ("[executors.x]\ntype = 'pbs'", "unknown executor type 'pbs'"),
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


SECTIONED = """
[engine]
batch = 70

[executors]
workers = 3
prefetch = 8

[executors.cluster]
type = "dask"

[auth]
oidc_issuer = "https://idp.example.org"
oidc_audience = "orchid"
admin_groups = ["ops", "admins"]

[ui]
secret = "s3cret"

[data]
root = "/srv/data"
"""


def test_sections_of_the_file_set_the_same_fields_as_top_level_keys(tmp_path: Path) -> None:
    s = load(tmp_path, SECTIONED)
    assert (s.batch, s.workers, s.prefetch) == (70, 3, 8)
    assert s.executors["cluster"].type == "dask"  # named executors beside the settings
    assert (s.oidc_issuer, s.admin_groups) == ("https://idp.example.org", "ops,admins")
    assert s.ui_secret == "s3cret"
    assert s.data_root == Path("/srv/data")
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) engine.wrokers"):
        load(tmp_path, "[engine]\nwrokers = 2\n")
    with pytest.raises(ConfigError, match="`batch` must be a whole number"):
        load(tmp_path, '[engine]\nbatch = "many"\n')


def test_sectioned_variables_win_over_their_older_names(tmp_path: Path) -> None:
    s = load(tmp_path, "", ORCHID_PREFETCH="4", ORCHID_EXECUTORS_PREFETCH="9")
    assert s.prefetch == 9
    s = load(tmp_path, "", ORCHID_REUSE_WORKERS="1", ORCHID_ENGINE_BATCH="12")
    assert (s.reuse_workers, s.batch) == (True, 12)
    s = load(tmp_path, "", ORCHID_DATA_ROOT="/d", ORCHID_UI_SECRET="x", ORCHID_OIDC_ISSUER="i")
    assert (s.data_root, s.ui_secret, s.oidc_issuer) == (Path("/d"), "x", "i")
    with pytest.raises(ConfigError, match="ORCHID_EXECUTORS_WORKERS='many' is not a valid int"):
        load(tmp_path, "", ORCHID_EXECUTORS_WORKERS="many")


def test_each_value_says_where_it_came_from_and_secrets_are_masked(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text(SECTIONED)
    s = Settings.load(env={"ORCHID_HOME": str(tmp_path), "ORCHID_BATCH": "5"}, poll_interval=0.5)
    shown = {(section, key): (value, source) for section, key, value, source in s.shown()}
    assert shown["engine", "batch"] == ("5", "$ORCHID_BATCH")
    assert shown["engine", "poll_interval"] == ("0.5", "flag")
    assert shown["executors", "prefetch"] == ("8", str(tmp_path / "settings.toml"))
    assert shown["engine", "lease_seconds"] == ("30.0", "default")
    assert shown["ui", "secret"] == ("********", str(tmp_path / "settings.toml"))
    assert "s3cret" not in repr(list(s.shown()))


def test_authentication_is_set_in_the_settings_file(tmp_path: Path) -> None:
    from orchid.auth import AuthConfig

    auth = AuthConfig.from_settings(load(tmp_path, SECTIONED))
    assert (auth.oidc_issuer, auth.oidc_audience) == ("https://idp.example.org", "orchid")
    assert auth.admin_groups == frozenset({"ops", "admins"})
    with pytest.raises(ConfigError, match="ORCHID_OIDC_AUDIENCE must be set"):
        AuthConfig.from_settings(load(tmp_path, '[auth]\noidc_issuer = "https://i.org"\n'))


def test_retention_settings_read_durations_and_refuse_nonsense(tmp_path: Path) -> None:
    from orchid.settings import duration

    assert [duration(t) for t in ("", "3600", "90s", "15m", "12h", "30d", "2w")] == [
        None,
        3600.0,
        90.0,
        900.0,
        43200.0,
        2592000.0,
        1209600.0,
    ]
    home = {"ORCHID_HOME": str(tmp_path)}
    s = Settings.load(env={**home, "ORCHID_RETENTION_ARCHIVE_AFTER": "30d"})
    assert s.archive_after == 30 * 86400 and s.archive_dir == tmp_path / "archive"
    assert Settings.load(env=home).archive_after is None  # off unless set
    for var, value, words in (
        ("ORCHID_RETENTION_ARCHIVE_AFTER", "soon", "cannot read the duration"),
        ("ORCHID_RETENTION_ARCHIVE_AFTER", "-1d", "cannot read the duration"),
        ("ORCHID_RETENTION_LOGS", "shred", "logs must be one of"),
        ("ORCHID_RETENTION_SHARE", "0", "share must be above 0"),
        ("ORCHID_RETENTION_BATCH", "0", "batch must be at least 1"),
    ):
        with pytest.raises(ConfigError, match=words):
            Settings.load(env={**home, var: value})
