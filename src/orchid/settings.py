"""One frozen settings object, read once at start and passed down.

Sources, each overriding the one before: defaults, the settings file (see
:mod:`orchid.config`: named executors, brokers and subscribers, and top-level keys),
``ORCHID_*`` environment variables, command-line flags.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Settings:
    """Where state lives and how agents behave. ``ORCHID_<FIELD>`` overrides each field."""

    home: Path
    db_url: str
    workers: int = max(os.cpu_count() or 1, 1)  # local executor slots
    executor: str = "local"
    poll_interval: float = 1.0  # seconds between polls when the bus is quiet
    lease_seconds: float = 30.0  # how long a claim holds before another agent may take it
    batch: int = 5000  # rows an agent claims (and records) at once
    owner: str = "local"
    data_managers: Path | None = None  # TOML file of named data managers (datamgr/registry.py)
    # the folder of the built-in `posix` data manager (None: there is none; `orchid run` and
    # `orchid up` use <home>/data). Never the service's own files: see datamgr/registry.py
    data_root: Path | None = None
    job_events: bool = False  # the trigger writes `jobs.ended` events for notifications
    settings_file: Path | None = None
    executors: Mapping[str, PluginConfig] = field(default_factory=dict)  # by name
    brokers: Mapping[str, PluginConfig] = field(default_factory=dict)
    notify: Mapping[str, PluginConfig] = field(default_factory=dict)  # subscribers

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

    bus: str = "auto"  # event bus: auto (postgres on PostgreSQL, else memory), memory, postgres, db
    # local executor: run a workflow's function jobs in long-lived workers (one per slot)
    reuse_workers: bool = True
    prefetch: int = 64  # local executor: jobs taken ahead of free slots while jobs are quick
    # size limits (orchid.core.limits.Limits documents each; docs/security.md lists them)
    expr_max_items: int = DEFAULT_LIMITS.expr_max_items  # longest list an expression builds
    expr_max_string: int = DEFAULT_LIMITS.expr_max_string  # longest string (characters)
    expr_max_bytes: int = DEFAULT_LIMITS.expr_max_bytes  # largest expression value, as JSON
    job_args_max_bytes: int = DEFAULT_LIMITS.job_args_max_bytes  # one job's args, as JSON
    result_max_bytes: int = DEFAULT_LIMITS.result_max_bytes  # one job's result, as JSON

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

    # local executors: the OS user jobs run as ("": as the agent), unless their section says
    run_as: str = ""
    # local executors: more of the agent's variables jobs get (comma-separated names, NAME*
    # for a prefix); by default only PATH, HOME, LANG, LC_*, TZ, TMPDIR, USER, LOGNAME
    env_passthrough: str = ""
    # limits of the API server on one request (issue 15: one request must not pin it)
    max_works: int = DEFAULT_MAX_WORKS  # works (and loops) one template may hold; more: 422
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES  # a request body, unpacked; more: 413

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @staticmethod
    def load(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """From the environment, then keyword overrides (command-line flags); None is ignored."""
        env = os.environ if env is None else env
        home = Path(overrides.pop("home", None) or env.get("ORCHID_HOME") or default_home())
        named = env.get("ORCHID_SETTINGS")
        path = Path(named).expanduser() if named else home / "settings.toml"
        file = config.read(path, required=bool(named))
        s = Settings(
            home=home,
            db_url=env.get("ORCHID_DB_URL") or f"sqlite:///{home / 'orchid.db'}",
            owner=env.get("USER") or "local",
            data_managers=Path(env["ORCHID_DATA_MANAGERS"])
            if env.get("ORCHID_DATA_MANAGERS")
            else None,
            settings_file=file.path,
            executors=file.executors,
            brokers=file.brokers,
            notify=file.notify,
        )
        fields: dict[str, Any] = {}
        for name, kind in _FIELDS:
            raw: Any = file.top.get(name)
            if raw is None:
                continue
            if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
                raw = ",".join(raw)  # a list of names for a comma-separated setting
            number = isinstance(raw, int | float) and not isinstance(raw, bool)
            if kind is bool:
                fine = isinstance(raw, bool)
            elif kind is str or kind is Path:
                fine = isinstance(raw, str)
            else:
                fine = number and (kind is float or isinstance(raw, int))
            if not fine:
                what = {int: "a whole number", float: "a number", str: "text", Path: "a path"}.get(
                    kind, "true or false"
                )
                raise ConfigError(f"{file.path}: `{name}` must be {what}; got {raw!r}")
            fields[name] = kind(raw)
        unknown = sorted(set(file.top) - {n for n, _ in _FIELDS})
        if unknown:
            known = ", ".join(n for n, _ in _FIELDS)
            raise ConfigError(
                f"{file.path}: unknown setting(s) {', '.join(unknown)}; top-level keys are "
                f"{known}, and the sections [executors.NAME], [brokers.NAME], [notify.NAME]"
            )
        for name, kind in _FIELDS:
            raw = env.get(f"ORCHID_{name.upper()}")
            if raw:
                try:
                    fields[name] = _flag(raw) if kind is bool else kind(raw)
                except ValueError:
                    raise ConfigError(
                        f"ORCHID_{name.upper()}={raw!r} is not a valid {kind.__name__}"
                    ) from None
        fields.update({k: v for k, v in overrides.items() if v is not None})
        if "db" in fields:
            fields["db_url"] = db_url_from(fields.pop("db"))
        s = replace(s, **fields)
        if s.workers < 1:
            raise ConfigError(f"workers must be at least 1; got {s.workers}")
        if s.prefetch < 0:
            raise ConfigError(f"prefetch cannot be negative; got {s.prefetch}")
        for name in ("max_works", "max_request_bytes"):
            if getattr(s, name) < 1:
                raise ConfigError(f"{name} must be at least 1; got {getattr(s, name)}")
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
        try:
            s.limits  # noqa: B018 (each limit is a whole number of at least 1)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return s

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


_FIELDS: tuple[tuple[str, type], ...] = (
    ("workers", int),
    ("executor", str),
    ("poll_interval", float),
    ("lease_seconds", float),
    ("batch", int),
    ("owner", str),
    ("job_events", bool),
    ("bus", str),
    ("reuse_workers", bool),
    ("prefetch", int),
    ("data_root", Path),
    ("expr_max_items", int),
    ("expr_max_string", int),
    ("expr_max_bytes", int),
    ("job_args_max_bytes", int),
    ("result_max_bytes", int),
    ("run_as", str),
    ("env_passthrough", str),
    ("max_works", int),
    ("max_request_bytes", int),
)


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def unknown_executor(name: str, known: frozenset[str]) -> str:
    """The message for an executor name that no settings define."""
    return (
        f"unknown executor {name!r}; the configured ones are {', '.join(sorted(known))} "
        "(name more in the settings file: [executors.NAME] with type = dask, panda, "
        "htcondor, local or null)"
    )


def db_url_from(value: str) -> str:
    """``--db`` takes a URL, or a path to an SQLite file."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"
