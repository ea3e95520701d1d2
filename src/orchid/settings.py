"""One frozen settings object, read once at start and passed down.

The settings come in sections (:class:`EngineSettings`, :class:`ServerSettings`,
:class:`AuthSettings`, :class:`UiSettings`, :class:`ExecutorDefaults`,
:class:`DataSettings`, :class:`RetentionSettings`), each field with its default and docstring; :class:`Settings` has
every field of every section. Sources, each overriding the one before: defaults, the
settings file (see :mod:`orchid.config`: ``[SECTION]`` tables, or top-level keys as
before, and named executors, brokers and subscribers), ``ORCHID_<SECTION>_<KEY>``
environment variables (or ``ORCHID_<FIELD>``, their older names), command-line flags.
``orchid config show`` prints the result and where each value came from.

With :mod:`orchid.config` (the file, and variables a setting names), this is where the
service reads environment variables (tests/test_environment.py checks it); the job's side
reads those Orchid sets for jobs through :mod:`orchid.jobvars`.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from orchid import config
from orchid.config import BUILTIN_EXECUTORS, PluginConfig
from orchid.core.limits import DEFAULT as DEFAULT_LIMITS
from orchid.core.limits import Limits
from orchid.errors import ConfigError

DEFAULT_MAX_WORKS = 10_000
"""Works a template may hold (and loops, each counted on its own): a submission or a grown
open workflow past it is refused with HTTP 422. Validation and planning are linear in
works, about 0.1 ms a work; large job graphs belong in jobs (a jobs_file), not works."""

DEFAULT_MAX_REQUEST_BYTES = 256 * 1024 * 1024
"""Bytes a submission body may hold, after gzip is unpacked: past it, HTTP 413. A jobs
file of 10^6 lines streamed as JSON lines is about 100 MB."""


def default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("orchid", appauthor=False))


class _Section(BaseModel):
    """A section of the settings: ``[NAME]`` in the file, ``ORCHID_<NAME>_<KEY>`` variables.
    A field named ``<NAME>_<KEY>`` is ``KEY`` in its section."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)
    section: ClassVar[str]


class EngineSettings(_Section):
    """How agents behave."""

    section: ClassVar[str] = "engine"

    poll_interval: float = 1.0
    """Seconds between polls when the bus is quiet."""
    lease_seconds: float = 30.0
    """How long a claim holds before another agent may take it (at least 2)."""
    batch: int = 5000
    """Rows an agent claims (and records) at once."""
    share_decay: float = 300.0
    """Fair share: seconds a user's past use of slots keeps counting (the time constant of
    its decayed usage; docs/operations.md, Limits and fair share)."""
    owner: str = "local"
    """The user `orchid run` submits as (default: $USER)."""
    job_events: bool = False
    """The trigger writes `jobs.ended` events for notifications."""
    bus: str = "auto"
    """Event bus: auto (postgres on PostgreSQL, else memory), memory, postgres, db."""
    # size limits (orchid.core.limits.Limits documents each; docs/security.md lists them)
    expr_max_items: int = DEFAULT_LIMITS.expr_max_items
    """Longest list an expression builds."""
    expr_max_string: int = DEFAULT_LIMITS.expr_max_string
    """Longest string an expression builds (characters)."""
    expr_max_bytes: int = DEFAULT_LIMITS.expr_max_bytes
    """Largest expression value, as JSON."""
    job_args_max_bytes: int = DEFAULT_LIMITS.job_args_max_bytes
    """One job's args, as JSON."""
    result_max_bytes: int = DEFAULT_LIMITS.result_max_bytes
    """One job's result, as JSON."""

    @property
    def limits(self) -> Limits:
        """The size limits, as the core checks them."""
        return Limits(
            expr_max_items=self.expr_max_items,
            expr_max_string=self.expr_max_string,
            expr_max_bytes=self.expr_max_bytes,
            job_args_max_bytes=self.job_args_max_bytes,
            result_max_bytes=self.result_max_bytes,
        )


class ServerSettings(_Section):
    """Limits of the API server on one request (issue 15: one request must not pin it)."""

    section: ClassVar[str] = "server"

    max_works: int = DEFAULT_MAX_WORKS
    """Works (and loops) one template may hold; more: HTTP 422."""
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    """A request body, unpacked; more: HTTP 413."""
    metrics_group: str = "metrics"
    """Members of this group (and admins) may read /metrics."""


class AuthSettings(_Section):
    """Who a request is (docs/security.md): OIDC bearer tokens, X.509 through a proxy."""

    section: ClassVar[str] = "auth"

    oidc_issuer: str | None = None
    """The identity provider (https://...); set it to turn OIDC on."""
    oidc_audience: str | None = None
    """The audience tokens must carry (required with the issuer)."""
    oidc_jwks_url: str | None = None
    """The issuer's signing keys (default: from its openid-configuration)."""
    oidc_user_claim: str = "preferred_username"
    """The claim naming the user (falls back to sub)."""
    oidc_groups_claim: str = "groups"
    """The claim listing groups: a name, or a dotted path like realm_access.roles."""
    admin_groups: str = ""
    """Groups whose members are admins (comma-separated, or a list in the file)."""
    trusted_proxies: str = ""
    """Proxies whose client-certificate header is believed: IP addresses or networks."""
    dn_header: str = "X-SSL-Client-DN"
    """The header such a proxy puts the client's DN in."""
    x509_cn_names: bool = False
    """An unmapped DN's user is its CN (not the whole DN)."""
    user_map: Path | None = None
    """A TOML file mapping DNs and OIDC claims to users (orchid.api.names)."""


class UiSettings(_Section):
    """The monitor pages under /ui."""

    section: ClassVar[str] = "ui"

    ui_secret: str | None = None
    """Keys the CSRF tokens of proxy (X.509) sessions (default: random per process)."""
    oidc_client_id: str | None = None
    """The UI's OIDC client: with it, the UI offers a login through the provider."""
    oidc_client_secret: str | None = None
    """Its secret (confidential clients)."""
    oidc_scopes: str = "openid profile"
    """The scopes the login asks for (must include openid)."""


class ExecutorDefaults(_Section):
    """The default executor, and what local executors do unless their section says."""

    section: ClassVar[str] = "executors"

    executor: str = "local"
    """The executor of works that name none."""
    workers: int = Field(default_factory=lambda: max(os.cpu_count() or 1, 1))
    """Local executors: process slots (default: the CPUs)."""
    reuse_workers: bool = True
    """Local executors: run a workflow's function jobs in long-lived workers (one per slot
    and workflow); false: a new interpreter per job."""
    prefetch: int = 64
    """Local executors: jobs taken ahead of free slots while jobs are quick (0: never)."""
    run_as: str = ""
    """Local executors: the OS user jobs run as ("": as the agent)."""
    env_passthrough: str = ""
    """Local executors: more of the agent's variables jobs get (comma-separated names,
    NAME* for a prefix); by default only PATH, HOME, LANG, LC_*, TZ, TMPDIR, USER, LOGNAME."""


class DataSettings(_Section):
    """Data managers (datamgr/registry.py)."""

    section: ClassVar[str] = "data"

    data_managers: Path | None = None
    """A TOML file of named data managers."""
    data_root: Path | None = None
    """The folder of the built-in `posix` data manager (none: there is none; `orchid run`
    and `orchid up` use <home>/data). Never the service's own files."""


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
RETENTION_LOGS = ("archive", "delete", "keep")


def duration(text: str) -> float | None:
    """Seconds of a duration: ``3600``, ``90s``, ``15m``, ``12h``, ``30d``, ``2w``; None for
    empty text (never). A ConfigError says what is accepted."""
    text = text.strip().lower()
    if not text:
        return None
    number, unit = (text[:-1], text[-1]) if text[-1] in _UNITS else (text, "s")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise ConfigError(
            f"cannot read the duration {text!r}: use seconds (3600) or a number with "
            "s, m, h, d or w (30d)"
        )
    return seconds


class RetentionSettings(_Section):
    """Archiving ended workflows (docs/operations.md, Retention)."""

    section: ClassVar[str] = "retention"

    retention_archive_after: str = ""
    """Archive workflows this long after they ended: seconds, or 12h, 30d, 2w ("": never;
    `orchid archive` still archives by hand)."""
    retention_archive_dir: Path | None = None
    """Where archive files go (default: <home>/archive)."""
    retention_batch: int = 2000
    """Rows deleted or restored per transaction."""
    retention_logs: str = "archive"
    """Job logs of an archived workflow: archive (into its file), delete, or keep."""
    retention_share: float = 0.05
    """At most this share of an agent loop's time goes to archiving (0 < share <= 1)."""

    @property
    def archive_after(self) -> float | None:
        """Seconds after its end a workflow is archived (None: never by itself)."""
        return duration(self.retention_archive_after)


SECTIONS: tuple[type[_Section], ...] = (
    EngineSettings,
    ServerSettings,
    AuthSettings,
    UiSettings,
    ExecutorDefaults,
    DataSettings,
    RetentionSettings,
)
SECRETS = frozenset({"ui_secret", "oidc_client_secret", "db_url"})
"""Fields `orchid config show` masks (db_url: a URL may hold a password)."""


class Settings(
    EngineSettings,
    ServerSettings,
    AuthSettings,
    UiSettings,
    ExecutorDefaults,
    DataSettings,
    RetentionSettings,
):
    """Where state lives, and every field of every section."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    home: Path
    """Where Orchid keeps its state ($ORCHID_HOME)."""
    db_url: str
    """The database ($ORCHID_DB_URL; default: <home>/orchid.db)."""
    settings_file: Path | None = None
    """The settings file read ($ORCHID_SETTINGS, else <home>/settings.toml if it exists)."""
    executors: Mapping[str, PluginConfig] = Field(default_factory=dict)
    """Named executors, [executors.NAME]."""
    brokers: Mapping[str, PluginConfig] = Field(default_factory=dict)
    """Message brokers, [brokers.NAME]."""
    notify: Mapping[str, PluginConfig] = Field(default_factory=dict)
    """Notification subscribers, [notify.NAME]."""
    sources: Mapping[str, str] = Field(default_factory=dict, repr=False)
    """Where each value came from: a file, a variable, a flag (default: not listed)."""

    @property
    def executor_names(self) -> frozenset[str]:
        """The executors a work may name: the built-in ones and those of the settings file."""
        return frozenset(BUILTIN_EXECUTORS) | frozenset(self.executors)

    def executor_config(self, name: str) -> PluginConfig:
        """The section of executor ``name`` (built-in ones need none)."""
        found = self.executors.get(name)
        if found is not None:
            return found
        if name in BUILTIN_EXECUTORS:
            return PluginConfig(name, name)
        raise ConfigError(unknown_executor(name, self.executor_names))

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def archive_dir(self) -> Path:
        """Where archive files go (``[retention] archive_dir``, else <home>/archive)."""
        return self.retention_archive_dir or self.home / "archive"

    def replace(self, **changes: Any) -> Settings:
        """A copy with these fields changed (as command-line flags)."""
        sources = {**self.sources, **{name: "flag" for name in changes}}
        return self.model_copy(update={**changes, "sources": sources})

    @staticmethod
    def load(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """From the settings file, the environment, then keyword overrides (command-line
        flags); None is ignored."""
        env = os.environ if env is None else env
        home = Path(overrides.pop("home", None) or env.get("ORCHID_HOME") or default_home())
        named = env.get("ORCHID_SETTINGS")
        path = Path(named).expanduser() if named else home / "settings.toml"
        file = config.read(path, required=bool(named))
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name, raw in _file_values(file):
            values[name] = _from_file(name, raw, file.path)
            sources[name] = str(file.path)
        for name, var, raw in _env_values(env):
            values[name] = _from_env(name, var, raw)
            sources[name] = f"${var}"
        if "owner" not in values and env.get("USER"):
            values["owner"], sources["owner"] = env["USER"], "$USER"
        flags = {k: v for k, v in overrides.items() if v is not None}
        if "db" in flags:
            flags["db_url"] = db_url_from(flags.pop("db"))
        for name in flags:
            sources[name] = "flag"
        values.update(flags)
        db_url = values.pop("db_url", None) or env.get("ORCHID_DB_URL")
        if db_url and "db_url" not in sources:
            sources["db_url"] = "$ORCHID_DB_URL"
        if env.get("ORCHID_HOME"):
            sources["home"] = "$ORCHID_HOME"
        try:
            s = Settings(
                home=home,
                db_url=db_url or f"sqlite:///{home / 'orchid.db'}",
                settings_file=file.path,
                executors=file.executors,
                brokers=file.brokers,
                notify=file.notify,
                sources=sources,
                **values,
            )
        except ValidationError as exc:
            raise ConfigError(_problems(exc)) from None
        s.check()
        return s

    def check(self) -> None:
        """The values are in range, and every plugin section is valid."""
        s = self
        if s.workers < 1:
            raise ConfigError(f"workers must be at least 1; got {s.workers}")
        if s.prefetch < 0:
            raise ConfigError(f"prefetch cannot be negative; got {s.prefetch}")
        for name in ("max_works", "max_request_bytes"):
            if getattr(s, name) < 1:
                raise ConfigError(f"{name} must be at least 1; got {getattr(s, name)}")
        if not s.share_decay > 0:
            raise ConfigError(f"share_decay must be more than 0 seconds; got {s.share_decay}")
        if s.batch < 1:
            raise ConfigError(f"batch must be at least 1; got {s.batch}")
        for name in ("poll_interval", "lease_seconds"):
            if not getattr(s, name) > 0:
                raise ConfigError(
                    f"{name} must be a positive number of seconds; got {getattr(s, name)}"
                )
        if s.lease_seconds < 2:
            raise ConfigError(f"lease_seconds must be at least 2; got {s.lease_seconds}")
        if s.executor not in s.executor_names:
            raise ConfigError(unknown_executor(s.executor, s.executor_names))
        s.check_plugins()
        if s.bus not in ("auto", "memory", "postgres", "db"):
            raise ConfigError(f"unknown event bus {s.bus!r}; use auto, memory, postgres or db")
        s.archive_after  # noqa: B018 (a readable duration)
        if s.retention_batch < 1:
            raise ConfigError(f"[retention] batch must be at least 1; got {s.retention_batch}")
        if s.retention_logs not in RETENTION_LOGS:
            raise ConfigError(
                f"[retention] logs must be one of {', '.join(RETENTION_LOGS)}; "
                f"got {s.retention_logs!r}"
            )
        if not 0 < s.retention_share <= 1:
            raise ConfigError(
                f"[retention] share must be above 0 and at most 1; got {s.retention_share}"
            )
        try:
            s.limits  # noqa: B018 (each limit is a whole number of at least 1)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def check_plugins(self) -> None:
        """Every section of the settings file is valid (each plugin checks its own keys)."""
        from orchid.executors import registry
        from orchid.notify import config as notify_config

        where = self.settings_file or "the settings file"
        for cfg in self.executors.values():
            options = registry.check(cfg, f"{where}: [executors.{cfg.name}]")
            broker = getattr(options, "status_broker", None)
            if broker is not None and broker not in self.brokers:
                raise ConfigError(
                    f"{where}: [executors.{cfg.name}]: status_broker {broker!r} is not a "
                    "[brokers.NAME] section"
                )
        notify_config.check_all(self.brokers, self.notify, str(where))

    def shown(self) -> Iterator[tuple[str, str, str, str]]:
        """(section, key, value, source) of every sectioned setting, secrets masked."""
        for section in SECTIONS:
            for name in section.model_fields:
                if name not in _OWN[section.section]:
                    continue
                value = getattr(self, name)
                text = "" if value is None else str(value)
                if name in SECRETS and value:
                    text = "********"
                yield section.section, _key(section, name), text, self.sources.get(name, "default")
        for name in ("home", "db_url", "settings_file"):
            value = getattr(self, name)
            text = "********" if name in SECRETS and "@" in str(value) else str(value or "")
            yield "", name, text, self.sources.get(name, "default")


_OWN: dict[str, frozenset[str]] = {
    section.section: frozenset(section.__annotations__) - {"section"} for section in SECTIONS
}
"""The fields each section declares (its model has those of no other)."""
FIELDS: dict[str, type[_Section]] = {
    name: section for section in SECTIONS for name in _OWN[section.section]
}
"""The section of every sectioned field."""


def _key(section: type[_Section], name: str) -> str:
    """A field's key in its section: ``data_root`` is ``root`` in ``[data]``."""
    prefix = section.section + "_"
    return name[len(prefix) :] if name.startswith(prefix) else name


def variables(name: str) -> tuple[str, str]:
    """The variables that set a field: ``ORCHID_<SECTION>_<KEY>`` and ``ORCHID_<FIELD>``."""
    section = FIELDS[name]
    return f"ORCHID_{section.section}_{_key(section, name)}".upper(), f"ORCHID_{name.upper()}"


def _file_values(file: config.SettingsFile) -> Iterator[tuple[str, Any]]:
    """(field, value) of the file: top-level keys (older files), then [SECTION] tables."""
    where = file.path
    unknown = []
    tables = {s.section: s for s in SECTIONS}
    for key, raw in file.top.items():
        section = tables.get(key)
        if section is not None and isinstance(raw, dict):
            continue
        if key in FIELDS:
            yield key, raw
        else:
            unknown.append(key)
    for key, raw in file.top.items():
        section = tables.get(key)
        if section is None or not isinstance(raw, dict):
            continue
        keys = {_key(section, n): n for n in _OWN[section.section]}
        for sub, value in raw.items():
            if sub in keys:
                yield keys[sub], value
            else:
                unknown.append(f"{key}.{sub}")
    if unknown:
        known = ", ".join(sorted(FIELDS))
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; top-level keys are "
            f"{known} (or the same in their [SECTION]: {', '.join(tables)}), and the "
            "sections [executors.NAME], [brokers.NAME], [notify.NAME]"
        )


def _env_values(env: Mapping[str, str]) -> Iterator[tuple[str, str, str]]:
    """(field, variable, value) of the variables set (not empty); the sectioned name wins."""
    for name in FIELDS:
        for var in variables(name):
            raw = env.get(var, "").strip()
            if raw:
                yield name, var, raw
                break


_WHAT = {
    int: "a whole number",
    float: "a number",
    str: "text",
    Path: "a path",
    bool: "true or false",
}


def _kind(name: str) -> type:
    annotation = Settings.model_fields[name].annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) and args:
        return typing.cast(type, args[0])
    return typing.cast(type, annotation)


def _from_file(name: str, raw: Any, path: Path | None) -> Any:
    """A value of the file, of the field's own type (TOML has types: no conversion)."""
    kind = _kind(name)
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw) and kind is str:
        raw = ",".join(raw)  # a list of names for a comma-separated setting
    if kind is Path and isinstance(raw, str):
        return Path(raw)
    try:
        return TypeAdapter(kind).validate_python(raw, strict=True)
    except ValidationError:
        raise ConfigError(
            f"{path}: `{name}` must be {_WHAT.get(kind, kind.__name__)}; got {raw!r}"
        ) from None


def _from_env(name: str, var: str, raw: str) -> Any:
    """A variable's text as the field's type."""
    kind = _kind(name)
    try:
        return TypeAdapter(kind).validate_python(raw)
    except ValidationError:
        if kind is bool:
            raise ConfigError(f"{var}={raw!r}: use true or false") from None
        raise ConfigError(f"{var}={raw!r} is not a valid {kind.__name__}") from None


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


def section_from_env(model: type[_Section], env: Mapping[str, str] | None = None) -> Any:
    """One section from the environment alone (no settings file): for callers that have
    no :class:`Settings` (``AuthConfig.from_env``)."""
    env = os.environ if env is None else env
    fields = _OWN[model.section]
    values = {
        name: _from_env(name, var, raw) for name, var, raw in _env_values(env) if name in fields
    }
    return model(**values)


def environment(name: str) -> str | None:
    """A variable a setting names (a secret's ``secret_env``, a token's ``token_env``)."""
    return os.environ.get(name)


def unknown_executor(name: str, known: frozenset[str]) -> str:
    """The message for an executor name that no settings define."""
    return (
        f"unknown executor {name!r}; the configured ones are {', '.join(sorted(known))} "
        "(name more in the settings file: [executors.NAME] with type = dask, panda, "
        "htcondor, slurm, local or null)"
    )


def db_url_from(value: str) -> str:
    """``--db`` takes a URL, or a path to an SQLite file."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"
