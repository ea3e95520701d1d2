"""The registry: executor types by import path, each building itself from its section."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchid.config import PluginConfig
from orchid.errors import ConfigError
from orchid.executors import registry
from orchid.executors.base import Executor, ExecutorOptions, Payload
from orchid.settings import Settings
from tests.executors.contract import spec, wait_for


def _one_quick_job(executor: Executor) -> None:
    """Jobs are taken ahead only once jobs are seen to be quick."""
    executor.submit([spec(1, Payload(kind="command", command=("true",)))])
    wait_for(executor, 1)


def test_every_type_names_a_class_with_options_and_a_durability() -> None:
    for kind in registry.EXECUTORS:
        cls = registry.executor_class(kind)
        assert issubclass(cls.options_model, ExecutorOptions)
        assert callable(cls.from_config)
        assert isinstance(vars(cls).get("durable"), bool), kind
    with pytest.raises(ConfigError, match="unknown executor type 'pbs'; use one of local"):
        registry.executor_class("pbs", "[executors.x]")


def test_a_local_section_overrides_the_settings_defaults(tmp_path: Path) -> None:
    settings = Settings.load(env={"ORCHID_HOME": str(tmp_path), "ORCHID_PREFETCH": "1"})
    section = PluginConfig("fast", "local", {"workers": 2, "prefetch": 5})
    executor = registry.make(section, settings, None, tmp_path / "logs")
    try:
        assert executor.name == "fast" and not executor.durable
        _one_quick_job(executor)
        assert executor.capacity() == 2 + 5
    finally:
        executor.close()
    plain = registry.make(PluginConfig("plain", "local", {"workers": 2}), settings, None)
    try:
        _one_quick_job(plain)
        assert plain.capacity() == 2 + 1  # ORCHID_PREFETCH
    finally:
        plain.close()
