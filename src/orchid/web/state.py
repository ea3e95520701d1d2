"""The service's state: built once at start, read by every request of the API and the monitor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchid.auth import Authenticator
from orchid.datamgr.registry import ManagerSpec
from orchid.engine.workers import WorkerDesk
from orchid.settings import Settings
from orchid.store.db import Database

__all__ = ["ApiState"]


@dataclass(frozen=True)
class ApiState:
    """What the application holds (``app.state.orchid``); the monitor reads the same one."""

    settings: Settings
    db: Database
    authenticator: Authenticator
    max_body_bytes: int = 256 * 1024 * 1024
    trust_client_paths: bool = False  # `orchid up`: same machine, same user
    # the configured data managers (not built: templates are checked against them; None:
    # not checked here, the agents still check)
    data_managers: Mapping[str, ManagerSpec] | None = None
    workers: WorkerDesk | None = None  # the worker routes' (None: not served)
