"""Orchid's Python client: every REST endpoint as a typed method (used by ``orchid`` too).

``Client.from_config()`` finds the server in ``ORCHID_URL``/``ORCHID_TOKEN``, else in the
config file ``orchid up`` writes (``$XDG_CONFIG_HOME/orchid/config.toml``). Results are the
API's own pydantic models (:mod:`orchid.wire`); errors are
:class:`~orchid.client.errors.ClientError` subclasses.
"""

from orchid.client._http import NO_RETRY, Retry
from orchid.client.cache import CacheApi, sha256_of
from orchid.client.client import Action, Client, LogStream
from orchid.client.config import ClientConfig, config_path
from orchid.client.errors import (
    BadRequest,
    ClientError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Rejected,
    ServerError,
    TooLarge,
    Unauthorized,
    Unreachable,
)
from orchid.client.sse import Event
from orchid.wire import (
    CacheObjectOut,
    CachePage,
    CollectionOut,
    CommandOut,
    FileOut,
    FilePage,
    Health,
    JobOut,
    JobPage,
    MessageOut,
    MessagePage,
    WorkflowDetail,
    WorkflowOut,
    WorkflowPage,
    WorkOut,
)

__all__ = [
    "NO_RETRY",
    "Action",
    "BadRequest",
    "CacheApi",
    "CacheObjectOut",
    "CachePage",
    "Client",
    "ClientConfig",
    "ClientError",
    "CollectionOut",
    "CommandOut",
    "Conflict",
    "Event",
    "FileOut",
    "FilePage",
    "Forbidden",
    "Health",
    "Invalid",
    "JobOut",
    "JobPage",
    "LogStream",
    "MessageOut",
    "MessagePage",
    "NotFound",
    "Rejected",
    "Retry",
    "ServerError",
    "TooLarge",
    "Unauthorized",
    "Unreachable",
    "WorkOut",
    "WorkflowDetail",
    "WorkflowOut",
    "WorkflowPage",
    "config_path",
    "sha256_of",
]
