"""Executors by type: a table from type name to the class that implements it.

A ``[executors.NAME]`` section names its ``type`` (``local``, ``null``, ``dask``,
``panda``, ``htcondor``, ``slurm``, ``worker``: a queue for ``orchid worker``); the other
keys are that type's options, which the executor class declares (``options_model``) and
builds itself from (``from_config``). Classes are
named by import path, as rq names its pluggable classes, so this module imports none of
them: an executor's module is imported when a section of its type is checked or made
(their modules import their backends' libraries only when one is made, so settings can
be checked where those are not installed).
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from orchid.config import PluginConfig, validate
from orchid.errors import ConfigError
from orchid.executors.base import Buildable, BuildContext, Executor, ExecutorOptions, WakeUp

if TYPE_CHECKING:
    from orchid.executors.local import LocalOptions
    from orchid.settings import Settings

EXECUTORS: dict[str, str] = {
    "local": "orchid.executors.local:LocalExecutor",
    "null": "orchid.executors.null:NullExecutor",
    "dask": "orchid.executors.dask:DaskExecutor",
    "panda": "orchid.executors.panda:PandaExecutor",
    "htcondor": "orchid.executors.htcondor:HTCondorExecutor",
    "slurm": "orchid.executors.slurm:SlurmExecutor",
    "worker": "orchid.executors.workerqueue:WorkerQueue",
}
"""Executor types by name: ``module:Class`` of a class with ``options_model`` and
``from_config`` (:class:`~orchid.executors.base.Buildable`)."""


def executor_class(kind: str, where: str = "") -> type[Buildable]:
    """The class of an executor type; ConfigError for an unknown one."""
    path = EXECUTORS.get(kind)
    if path is None:
        prefix = f"{where}: " if where else ""
        raise ConfigError(
            f"{prefix}unknown executor type {kind!r}; use one of {', '.join(EXECUTORS)}"
        )
    module, _, name = path.partition(":")
    return cast("type[Buildable]", getattr(importlib.import_module(module), name))


def check(config: PluginConfig, where: str) -> ExecutorOptions:
    """The section's options, checked; ConfigError names the bad type or key."""
    model = executor_class(config.type, where).options_model
    options: ExecutorOptions = validate(model, config, where)
    return options


def namespace_for(db_url: str) -> str:
    """A default task-name prefix, the same for every agent of one database."""
    return "orchid-" + hashlib.sha256(db_url.encode()).hexdigest()[:8]


def context(
    settings: Settings, name: str, wake: WakeUp | None, log_dir: Path | None = None
) -> BuildContext:
    """What executor ``name`` gets of the settings besides its section."""
    return BuildContext(
        name=name,
        log_dir=settings.log_dir if log_dir is None else log_dir,
        wake=wake,
        namespace=namespace_for(settings.db_url),
        home=settings.home,
        limits=settings.limits,
        workers=settings.workers,
        prefetch=settings.prefetch,
        reuse_workers=settings.reuse_workers,
        run_as=settings.run_as,
        env_passthrough=settings.env_passthrough,
        brokers=settings.brokers,
    )


def make(
    config: PluginConfig, settings: Settings, wake: WakeUp | None, log_dir: Path | None = None
) -> Executor:
    """Build the executor a section describes (connecting to its backend), writing logs
    and result files into ``log_dir`` (default: ``settings.log_dir``)."""
    where = f"[executors.{config.name}]"
    cls = executor_class(config.type, where)
    options = validate(cls.options_model, config, where)
    built: Any = cls.from_config(options, context(settings, config.name, wake, log_dir))
    return cast(Executor, built)


def local_run_as(options: LocalOptions, settings: Settings) -> str | dict[str, str] | None:
    """A local executor's run_as: its section's, else the top-level setting."""
    return options.run_as if options.run_as is not None else (settings.run_as or None)
