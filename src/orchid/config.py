"""The settings file: named executors, message brokers and notification subscribers (TOML).

``$ORCHID_SETTINGS``, or ``$ORCHID_HOME/settings.toml`` when it exists::

    executor = "cluster"            # the default for works that name none (else: local)

    [executors.cluster]
    type = "dask"
    address = "tcp://10.0.0.5:8786"

    [brokers.mq]
    type = "stomp"
    host = "127.0.0.1"
    port = 61613

    [notify.ops]                    # a subscriber: STOMP messages ...
    broker = "mq"
    destination = "/topic/orchid"
    events = ["workflow.*", "work.*"]

    [notify.portal]                 # ... or signed HTTP webhooks
    url = "https://portal.example.org/orchid-hook"
    secret_env = "PORTAL_HOOK_SECRET"

Settings are keys of their section's table (``[engine] poll_interval = 2``; the keys of
``[executors]`` that are not tables, such as ``workers``, are settings too) or, as in older
files, top-level keys (``poll_interval = 2``): see :mod:`orchid.settings`;
``ORCHID_*`` environment variables override them. Each section is
checked when the file is read, so a typo stops the agents at start with the file, the
section and the key named, not at the first job. Plugins check their own options
(:mod:`orchid.executors.registry`, :mod:`orchid.notify.config`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from orchid.errors import ConfigError

BUILTIN_EXECUTORS = ("local", "null")
SECTIONS = ("executors", "brokers", "notify")


@dataclass(frozen=True)
class PluginConfig:
    """One named section: its ``type`` and the rest of its keys, checked by the plugin."""

    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SettingsFile:
    """What a settings file says; empty when there is none."""

    path: Path | None = None
    top: Mapping[str, Any] = field(default_factory=dict)
    executors: Mapping[str, PluginConfig] = field(default_factory=dict)
    brokers: Mapping[str, PluginConfig] = field(default_factory=dict)
    notify: Mapping[str, PluginConfig] = field(default_factory=dict)


def read(path: Path, *, required: bool) -> SettingsFile:
    """Parse the file (sections are only split here; :func:`check` validates them)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(f"no settings file {path} (ORCHID_SETTINGS names it)") from None
        return SettingsFile()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the settings file {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the settings file {path} is not valid TOML: {exc}") from None
    top = {k: v for k, v in data.items() if k not in SECTIONS}
    sections: dict[str, dict[str, PluginConfig]] = {}
    for section in SECTIONS:
        raw = data.get(section, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: `{section}` must be a table of named [{section}.NAME]")
        sections[section] = {}
        for name, body in raw.items():
            where = f"{path}: [{section}.{name}]"
            if section == "executors" and not isinstance(body, dict):
                top.setdefault(section, {})[name] = body  # a setting of [executors]
                continue
            if not isinstance(body, dict):
                raise ConfigError(f"{where} must be a table of keys, not a {type(body).__name__}")
            options = dict(body)
            kind = options.pop("type", _default_type(section, name, options))
            if not isinstance(kind, str) or not kind:
                raise ConfigError(f"{where}: `type` is required (a name such as dask or stomp)")
            sections[section][name] = PluginConfig(name, kind, options)
    return SettingsFile(path, top, sections["executors"], sections["brokers"], sections["notify"])


def environment(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The variable ``name`` (None: unset or empty): for the variables a setting names (a
    password's ``password_env``, a token's ``token_env``) and the few read before settings
    are (``ORCHID_LOG_FORMAT``, the CLI's choice of ``ORCHID_URL`` or ``ORCHID_DB_URL``)."""
    value = (os.environ if env is None else env).get(name, "").strip()
    return value or None


def _default_type(section: str, name: str, options: Mapping[str, Any]) -> str | None:
    """``type`` may be left out where it is obvious: a built-in executor, a subscriber."""
    if section == "executors" and name in BUILTIN_EXECUTORS:
        return name
    if section == "notify":
        return "webhook" if "url" in options else "stomp"
    return None


def validate(model: type[BaseModel], config: PluginConfig, where: str) -> Any:
    """Check a section's options against a plugin's model; errors name section and key."""
    try:
        return model.model_validate(dict(config.options))
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            key = ".".join(str(p) for p in e["loc"]) or "<section>"
            msg = (
                "is not a known key"
                if e["type"] == "extra_forbidden"
                else "is required"
                if e["type"] == "missing"
                else e["msg"]
            )
            problems.append(f"{key} {msg}")
        raise ConfigError(f"{where}: " + "; ".join(problems)) from None
