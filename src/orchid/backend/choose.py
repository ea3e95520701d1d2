"""Which Orchid a caller reaches: a server (``ORCHID_URL``) or the embedded engine.

Apart from :mod:`orchid.backend.base`, so that the two kinds, which build on the base, are
imported only here, and only the one chosen."""

from __future__ import annotations

from orchid.backend.base import Backend


def from_env(*, in_job: bool = False) -> Backend:
    """The server of ``ORCHID_URL`` (with ``ORCHID_TOKEN``, or the token the client config
    file holds for that url), else the embedded engine (``ORCHID_HOME``, ``ORCHID_DB_URL``).

    ``in_job``: for orchid-job, whose embedded engine runs no agents of its own (the
    caller's agents run the job) and which reads no config file.
    """
    from orchid.client.config import from_environment

    url, token = from_environment()
    if url:
        from orchid.backend.remote import RemoteBackend
        from orchid.client import Client
        from orchid.client.config import ClientConfig

        config = ClientConfig(url, token) if in_job else ClientConfig.load()
        return RemoteBackend(Client.from_config(config))
    from orchid.backend.embedded import EmbeddedBackend
    from orchid.settings import Settings

    return EmbeddedBackend(Settings.load(), run_agents=not in_job)
