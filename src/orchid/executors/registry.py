"""Executors by type: the options each takes in the settings file, and how one is made.

A ``[executors.NAME]`` section names its ``type`` (``local``, ``null``, ``dask``,
``panda``, ``htcondor``); the other keys are that type's options, checked by
:func:`check` when the settings are read. Plugins with large dependencies are imported
only by :func:`make`, so settings can be checked where those are not installed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchid.config import PluginConfig, validate
from orchid.errors import ConfigError
from orchid.executors.base import Executor, WakeUp
from orchid.executors.runas import RunAs

if TYPE_CHECKING:
    from orchid.settings import Settings


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalOptions(_Options):
    workers: int | None = Field(None, ge=1, description="process slots (default: ORCHID_WORKERS)")
    run_as: str | dict[str, str] | None = Field(
        None,
        description="the OS user jobs run as: one name, or a table of Orchid user (or "
        "group:NAME, or *) = OS user (default: the top-level run_as; none: the agent's own)",
    )
    env_passthrough: list[str] | None = Field(
        None,
        description="more of the agent's variables jobs get: NAME or PREFIX* (default: the "
        "top-level env_passthrough)",
    )


class NullOptions(_Options):
    pass


class DaskOptions(_Options):
    address: str | None = Field(
        None, description="the scheduler, tcp://HOST:8786; none: a LocalCluster"
    )
    local_workers: int = Field(2, ge=1, description="workers of the LocalCluster")
    slots: int | None = Field(
        None, ge=1, description="jobs in flight (default: the cluster's threads)"
    )
    python: str | None = Field(None, description="what `python` means on the workers")
    namespace: str | None = Field(None, description="prefix of task names (default: per database)")
    connect_timeout: float = Field(30.0, gt=0)


class PandaOptions(_Options):
    url: str = Field(description="the PanDA server, https://HOST:25443/server/panda")
    site: str | None = Field(None, description="the PanDA queue jobs go to unless a work says")
    vo: str = "wlcg"
    working_group: str | None = None
    prod_source_label: str = "managed"
    processing_type: str = "orchid"
    user_name: str | None = Field(None, description="the task owner (default: the token's)")
    auth: Literal["oidc", "x509"] = "oidc"
    token_env: str | None = Field(None, description="variable holding the OIDC token")
    auth_vo: str | None = Field(None, description="PANDA_AUTH_VO (default: vo)")
    verify_host: bool = True
    monitor_url: str | None = Field(None, description="log links: {monitor_url}/job?pandaid=N")
    python: str = "python3"
    namespace: str | None = None
    poll_interval: float = Field(30.0, gt=0, description="seconds between status queries")
    slots: int = Field(10_000, ge=1, description="jobs in flight")
    status_broker: str | None = Field(None, description="a [brokers.NAME] PanDA publishes to")
    status_destination: str | None = Field(None, description="its job status queue")


class HTCondorOptions(_Options):
    schedd: str | None = Field(None, description="the schedd's name (default: the local one)")
    collector: str | None = Field(None, description="the pool's collector host:port")
    python: str = "python3"
    namespace: str | None = None
    queue_attribute: str = Field("JobFlavour", description="the job attribute a `queue` sets")
    poll_interval: float = Field(10.0, gt=0, description="seconds between schedd queries")
    slots: int = Field(10_000, ge=1, description="jobs in flight")
    extra: dict[str, str] = Field(default_factory=dict, description="more submit commands")


OPTIONS: dict[str, type[_Options]] = {
    "local": LocalOptions,
    "null": NullOptions,
    "dask": DaskOptions,
    "panda": PandaOptions,
    "htcondor": HTCondorOptions,
}


def check(config: PluginConfig, where: str) -> _Options:
    """The section's options, checked; ConfigError names the bad type or key."""
    model = OPTIONS.get(config.type)
    if model is None:
        raise ConfigError(
            f"{where}: unknown executor type {config.type!r}; use one of {', '.join(OPTIONS)}"
        )
    options: _Options = validate(model, config, where)
    return options


def namespace_for(db_url: str) -> str:
    """A default task-name prefix, the same for every agent of one database."""
    return "orchid-" + hashlib.sha256(db_url.encode()).hexdigest()[:8]


def make(
    config: PluginConfig, settings: Settings, wake: WakeUp | None, log_dir: Path | None = None
) -> Executor:
    """Build the executor a section describes (connecting to its backend), writing logs
    and result files into ``log_dir`` (default: ``settings.log_dir``)."""
    where = f"[executors.{config.name}]"
    options: Any = check(config, where)
    log_dir = settings.log_dir if log_dir is None else log_dir
    namespace = getattr(options, "namespace", None) or namespace_for(settings.db_url)
    if config.type == "null":
        from orchid.executors.null import NullExecutor

        return _named(NullExecutor(wake=wake), config.name)
    if config.type == "local":
        from orchid.executors.local import LocalExecutor

        workers = options.workers or settings.workers
        passthrough = options.env_passthrough
        if passthrough is None:
            passthrough = [n.strip() for n in settings.env_passthrough.split(",") if n.strip()]
        local = LocalExecutor(
            workers=workers,
            log_dir=log_dir,
            wake=wake,
            prefetch=settings.prefetch,
            reuse_workers=settings.reuse_workers,
            limits=settings.limits,
            run_as=RunAs.parse(local_run_as(options, settings), where),
            env_passthrough=passthrough,
            home=settings.home,
        )
        return _named(local, config.name)
    if config.type == "dask":
        from orchid.executors.dask import DaskExecutor

        return DaskExecutor(
            log_dir,
            address=options.address,
            name=config.name,
            wake=wake,
            local_workers=options.local_workers,
            slots=options.slots,
            python=options.python,
            connect_timeout_s=options.connect_timeout,
            namespace=namespace,
        )
    if config.type == "panda":
        from orchid.executors.panda import PandaExecutor

        receiver = status_receiver(options, settings, where)
        return PandaExecutor(
            log_dir,
            options,
            name=config.name,
            wake=wake,
            namespace=namespace,
            status_messages=receiver,
        )
    if config.type == "htcondor":
        from orchid.executors.htcondor import HTCondorExecutor

        return HTCondorExecutor(log_dir, options, name=config.name, wake=wake, namespace=namespace)
    raise ConfigError(f"{where}: unknown executor type {config.type!r}")  # pragma: no cover


def local_run_as(options: LocalOptions, settings: Settings) -> str | dict[str, str] | None:
    """A local executor's run_as: its section's, else the top-level setting."""
    return options.run_as if options.run_as is not None else (settings.run_as or None)


def status_receiver(options: PandaOptions, settings: Settings, where: str) -> Any:
    """The receiver of a PanDA executor's job status messages, if it names a broker."""
    if options.status_broker is None:
        return None
    from orchid.notify import config as notify_config
    from orchid.notify.receiver import StatusReceiver

    cfg = settings.brokers.get(options.status_broker)
    if cfg is None or not options.status_destination:
        raise ConfigError(
            f"{where}: status_broker must name a [brokers.NAME] section and "
            "status_destination the queue PanDA sends job status messages to"
        )
    broker = notify_config.broker(cfg, f"[brokers.{options.status_broker}]")
    return StatusReceiver(
        broker, options.status_destination, name=f"orchid-{options.status_broker}"
    )


def _named(executor: Any, name: str) -> Executor:
    """Built-in executors answer to the name they were configured under."""
    executor.name = name
    return executor  # type: ignore[no-any-return]
