"""The settings-file sections of messaging: ``[brokers.NAME]`` and ``[notify.NAME]``."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchid.config import PluginConfig, environment, validate
from orchid.errors import ConfigError


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StompBroker(_Options):
    """A STOMP broker: ActiveMQ, or RabbitMQ with its STOMP plugin (port 61613)."""

    host: str = "127.0.0.1"
    port: int = Field(61613, ge=1, le=65535)
    user: str | None = None
    password: str | None = None
    password_env: str | None = Field(None, description="variable holding the password")
    vhost: str | None = Field(None, description="the STOMP `host` header (RabbitMQ: vhost)")
    heartbeat_ms: int = Field(10_000, ge=0)
    connect_timeout: float = Field(10.0, gt=0)
    ssl: bool = False

    def secret(self) -> str | None:
        if self.password_env:
            return environment(self.password_env)
        return self.password


class _Subscriber(_Options):
    events: list[str] = Field(
        default_factory=lambda: ["*"],
        description="event kinds to send, with shell wildcards: workflow.*, work.succeeded",
    )
    batch: int = Field(100, ge=1, le=10_000, description="notifications per send")
    max_attempts: int = Field(
        8, ge=1, le=1000, description="tries of one batch before it is parked"
    )
    backoff: float = Field(1.0, gt=0, description="seconds before the first retry; doubles")
    max_backoff: float = Field(300.0, gt=0)
    source: str = Field(
        "orchid", pattern=r"^[A-Za-z0-9_.\-]{1,64}$", description="prefix of message ids"
    )

    def wants(self, kind: str) -> bool:
        return any(fnmatch.fnmatchcase(kind, pattern) for pattern in self.events)

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed tries in a row (exponential, capped)."""
        return float(min(self.max_backoff, self.backoff * 2 ** max(0, failures - 1)))


class StompSubscriber(_Subscriber):
    type: Literal["stomp"] = "stomp"
    broker: str = Field(description="a [brokers.NAME] section")
    destination: str = Field(description="/topic/NAME or /queue/NAME")


class WebhookSubscriber(_Subscriber):
    type: Literal["webhook"] = "webhook"
    url: str = Field(pattern=r"^https?://", description="where batches are POSTed")
    secret: str | None = Field(None, description="HMAC-SHA256 key of the signature header")
    secret_env: str | None = Field(None, description="variable holding the key")
    timeout: float = Field(10.0, gt=0)

    def key(self) -> str | None:
        if self.secret_env:
            return environment(self.secret_env)
        return self.secret


Subscriber = StompSubscriber | WebhookSubscriber


def broker(config: PluginConfig, where: str) -> StompBroker:
    if config.type != "stomp":
        raise ConfigError(f"{where}: unknown broker type {config.type!r}; use stomp")
    options: StompBroker = validate(StompBroker, config, where)
    return options


def subscriber(config: PluginConfig, where: str) -> Subscriber:
    model: type[_Subscriber]
    if config.type == "stomp":
        model = StompSubscriber
    elif config.type == "webhook":
        model = WebhookSubscriber
    else:
        raise ConfigError(f"{where}: unknown subscriber type {config.type!r}; use stomp or webhook")
    sub: Subscriber = validate(model, config, where)
    return sub


def check_all(
    brokers: Mapping[str, PluginConfig], notify: Mapping[str, PluginConfig], where: str
) -> None:
    """Every broker and subscriber section is valid, and subscribers name known brokers."""
    for cfg in brokers.values():
        broker(cfg, f"{where}: [brokers.{cfg.name}]")
    for cfg in notify.values():
        sub = subscriber(cfg, f"{where}: [notify.{cfg.name}]")
        if isinstance(sub, StompSubscriber) and sub.broker not in brokers:
            names = ", ".join(brokers) or "none"
            raise ConfigError(
                f"{where}: [notify.{cfg.name}]: broker {sub.broker!r} is not a [brokers.NAME] "
                f"section (there are: {names})"
            )
        if isinstance(sub, WebhookSubscriber) and sub.secret_env and sub.key() is None:
            raise ConfigError(
                f"{where}: [notify.{cfg.name}]: secret_env names {sub.secret_env}, which is not set"
            )
