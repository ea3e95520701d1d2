"""One frozen settings object, read once at start (environment ``ORCHID_*``) and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orchid.errors import ConfigError


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
    batch: int = 2000  # rows an agent claims at once
    owner: str = "local"
    bus: str = "auto"  # event bus: auto (postgres on PostgreSQL, else memory), memory, postgres, db
    reuse_workers: bool = False  # local executor: run function jobs in long-lived workers
    prefetch: int = 0  # local executor: jobs taken ahead of free slots

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @staticmethod
    def load(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """From the environment, then keyword overrides (command-line flags); None is ignored."""
        env = os.environ if env is None else env
        home = Path(overrides.pop("home", None) or env.get("ORCHID_HOME") or default_home())
        s = Settings(
            home=home,
            db_url=env.get("ORCHID_DB_URL") or f"sqlite:///{home / 'orchid.db'}",
            owner=env.get("USER") or "local",
        )
        fields: dict[str, Any] = {}
        for name, kind in (
            ("workers", int),
            ("executor", str),
            ("poll_interval", float),
            ("lease_seconds", float),
            ("batch", int),
            ("owner", str),
            ("bus", str),
            ("reuse_workers", _flag),
            ("prefetch", int),
        ):
            raw = env.get(f"ORCHID_{name.upper()}")
            if raw:
                try:
                    fields[name] = kind(raw)
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
        if s.batch < 1:
            raise ConfigError(f"batch must be at least 1; got {s.batch}")
        for name in ("poll_interval", "lease_seconds"):
            if not getattr(s, name) > 0:
                raise ConfigError(
                    f"{name} must be a positive number of seconds; got {getattr(s, name)}"
                )
        if s.lease_seconds < 2:
            raise ConfigError(f"lease_seconds must be at least 2; got {s.lease_seconds}")
        if s.bus not in ("auto", "memory", "postgres", "db"):
            raise ConfigError(f"unknown event bus {s.bus!r}; use auto, memory, postgres or db")
        if s.executor not in ("local", "null"):
            raise ConfigError(f"unknown executor {s.executor!r}; use local or null")
        return s


def _flag(raw: str) -> bool:
    """A yes/no environment value."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)


_flag.__name__ = "yes/no value (1, 0, true, false)"


def db_url_from(value: str) -> str:
    """``--db`` takes a URL, or a path to an SQLite file."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"
