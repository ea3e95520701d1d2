"""Where the client finds its server: ``ORCHID_URL`` / ``ORCHID_TOKEN``, else a config file.

The file is ``$XDG_CONFIG_HOME/orchid/config.toml`` (``~/.config/orchid/config.toml`` when
XDG_CONFIG_HOME is unset), TOML with two keys::

    url = "http://127.0.0.1:8042"
    token = "orc_..."

``orchid up`` writes it. It holds a secret, so it is written readable by its owner only
(mode 0600, in a 0700 folder).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orchid.errors import ConfigError

URL_ENV = "ORCHID_URL"
TOKEN_ENV = "ORCHID_TOKEN"


def from_environment(env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """``ORCHID_URL`` and ``ORCHID_TOKEN`` (None: unset or empty)."""
    env = os.environ if env is None else env
    return env.get(URL_ENV, "").strip() or None, env.get(TOKEN_ENV, "").strip() or None


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The client config file (it need not exist)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "orchid" / "config.toml"


@dataclass(frozen=True)
class ClientConfig:
    """A server address and the token to show it (None: call anonymously)."""

    url: str
    token: str | None = None
    source: str = "arguments"  # where the url came from, for error messages

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", normalize_url(self.url))

    def __repr__(self) -> str:  # never print a token by accident
        hidden = "None" if self.token is None else "'***'"
        return f"ClientConfig(url={self.url!r}, token={hidden}, source={self.source!r})"

    @staticmethod
    def load(
        env: Mapping[str, str] | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
        path: Path | None = None,
    ) -> ClientConfig | None:
        """Arguments, then the environment, then the file; None when no url is configured.

        The file's token is only used with the file's url (or the very same url given
        another way): a token is never sent to a server it was not written for.
        """
        env = os.environ if env is None else env
        path = path or config_path(env)
        given_url = url if url is not None else env.get(URL_ENV, "").strip() or None
        given_token = token or env.get(TOKEN_ENV, "").strip() or None
        if given_url is None:
            stored = read_file(path)
            if stored is None:
                return None
            return ClientConfig(stored.url, given_token or stored.token, source=str(path))
        config = ClientConfig(given_url, given_token, source="--url" if url else URL_ENV)
        if config.token is None:  # the file is only read when it has something to add
            stored = read_file(path)
            if stored is not None and stored.url == config.url:
                return ClientConfig(config.url, stored.token, source=config.source)
        return config


def normalize_url(url: str) -> str:
    """``host:port`` or ``http(s)://host[:port][/prefix]``, without a trailing slash."""
    url = url.strip()
    if not url:
        raise ConfigError("the server URL is empty")
    if "://" not in url:
        url = "http://" + url
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"the server URL {url!r} must start with http:// or https://")
    return url.rstrip("/")


def read_file(path: Path) -> ClientConfig | None:
    """The url and token a config file holds; None if there is no file or it names no url."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the client config {path}: {exc}") from None
    url, token = data.get("url"), data.get("token")
    if url is None:
        return None
    if not isinstance(url, str) or not (token is None or isinstance(token, str)):
        raise ConfigError(f"{path}: `url` and `token` must be strings")
    return ClientConfig(url, token or None, source=str(path))


def write_file(path: Path, url: str, token: str | None) -> None:
    """Write (replace) the config file, mode 0600 from the first byte: it holds a token."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lines = [f"url = {_toml_string(normalize_url(url))}"]
    if token is not None:
        lines.append(f"token = {_toml_string(token)}")
    text = "# written by `orchid up`; the token is a secret\n" + "\n".join(lines) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _toml_string(value: str) -> str:
    # a JSON string (ASCII, \" \\ \n \uXXXX escapes) is a valid TOML basic string
    return json.dumps(value, ensure_ascii=True)
