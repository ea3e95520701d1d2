"""Who is who across authentication methods: the user names of OIDC and X.509 callers.

Ownership goes by user name, so two methods must not hand out the same name to different
people. Each method has its own namespace unless an admin says otherwise:

- local tokens (``orchid token create --user alice``): the name as given, ``alice``;
- OIDC: ``oidc:`` and the user claim, ``oidc:alice``: an account at the identity provider
  is not the local user of the same name;
- X.509: the whole DN, most general part first, ``/C=CH/O=Lab/CN=Alice Smith`` (``/`` and
  ``\\`` in values are escaped with ``\\``, so that no two DNs give one name); the CN alone
  only where ``ORCHID_X509_CN_NAMES`` says so, for a CA whose CNs are the user names.

The admin's map (``ORCHID_USER_MAP``, a TOML file) names anyone otherwise::

    [oidc]            # the OIDC user claim → the Orchid user
    alice = "alice"
    [x509]            # a DN, in either form → the Orchid user
    "/C=CH/O=Lab/CN=Alice Smith" = "alice"
    [x509_groups]     # a DN → its groups (an ORCHID_ADMIN_GROUPS group makes an admin)
    "/C=CH/O=Lab/CN=Alice Smith" = ["physics"]
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchid.core.model import name_problem
from orchid.errors import ConfigError

OIDC_PREFIX = "oidc:"
DnKey = tuple[tuple[str, str], ...]

_SLASH_PART = re.compile(r"/(?=[A-Za-z][\w.-]*=)")
_ATTRIBUTE = re.compile(r"[A-Za-z][\w-]*|\d+(?:\.\d+)+")


@dataclass(frozen=True)
class UserMap:
    """The admin's map from authenticated identities to Orchid user names and groups."""

    oidc: Mapping[str, str] = field(default_factory=dict)
    x509: Mapping[str, str] = field(default_factory=dict)
    x509_groups: Mapping[str, frozenset[str]] = field(default_factory=dict)


def load_user_map(path: Path) -> UserMap:
    """Read ``ORCHID_USER_MAP``; a ConfigError says what is wrong and where."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"ORCHID_USER_MAP: cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"ORCHID_USER_MAP: {path} is not TOML: {exc}") from None
    unknown = sorted(set(data) - {"oidc", "x509", "x509_groups"})
    if unknown:
        raise ConfigError(
            f"ORCHID_USER_MAP: {path}: unknown table(s) {', '.join(unknown)}; "
            "use [oidc], [x509] and [x509_groups]"
        )
    return UserMap(
        oidc=_names(data.get("oidc", {}), f"{path} [oidc]"),
        x509=_names(data.get("x509", {}), f"{path} [x509]"),
        x509_groups=_groups(data.get("x509_groups", {}), f"{path} [x509_groups]"),
    )


def _table(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"ORCHID_USER_MAP: {where} must be a table")
    return raw


def _names(raw: Any, where: str) -> dict[str, str]:
    out = {}
    for key, value in _table(raw, where).items():
        if not isinstance(value, str):
            raise ConfigError(f"ORCHID_USER_MAP: {where} {key!r}: the user name must be text")
        check_mapped_name(value, f"{where} {key!r}")
        out[key] = value
    return out


def _groups(raw: Any, where: str) -> dict[str, frozenset[str]]:
    out = {}
    for key, value in _table(raw, where).items():
        if not (isinstance(value, list) and all(isinstance(g, str) for g in value)):
            raise ConfigError(f"ORCHID_USER_MAP: {where} {key!r}: give a list of group names")
        for group in value:
            problem = name_problem(group, "group name")
            if problem is not None:
                raise ConfigError(f"ORCHID_USER_MAP: {where} {key!r}: {problem}")
        out[key] = frozenset(value)
    return out


def check_mapped_name(name: str, where: str) -> None:
    """A name an admin maps someone to follows the rule of local names."""
    problem = name_problem(name)
    if problem is not None:
        raise ConfigError(f"{where}: {problem}")


# --- X.509 distinguished names --------------------------------------------------------------


def parse_dn(dn: str) -> DnKey:
    """(ATTRIBUTE, value) pairs, most general first, so that equal DNs compare equal whichever
    way the proxy writes them: RFC 4514 (``CN=alice,O=Lab,C=CH``, nginx) or OpenSSL's one-line
    form (``/C=CH/O=Lab/CN=alice``)."""
    dn = dn.strip()
    if dn.startswith("/"):
        parts, general_first = _SLASH_PART.split(dn[1:]), True
    else:
        parts, general_first = _split_rfc4514(dn), False
    pairs = []
    for part in parts:
        attribute, eq, value = part.partition("=")
        attribute = attribute.strip()
        if not eq or not _ATTRIBUTE.fullmatch(attribute):
            raise ValueError(f"{part[:40]!r} is not ATTRIBUTE=value")
        value = value.strip() if general_first else _unescape(value.strip())
        pairs.append((attribute.upper(), value))
    return tuple(pairs if general_first else reversed(pairs))


def dn_name(key: DnKey) -> str:
    """The user name of a DN nobody mapped: ``/C=CH/O=Lab/CN=Alice Smith``, with ``\\`` and
    ``/`` in values escaped, so that two different DNs never give the same name."""
    return "".join(
        f"/{attribute}={value.replace(chr(92), chr(92) * 2).replace('/', chr(92) + '/')}"
        for attribute, value in key
    )


def _split_rfc4514(dn: str) -> list[str]:
    parts, start, i = [], 0, 0
    while i < len(dn):
        if dn[i] == "\\":
            i += 2
            continue
        if dn[i] in ",+;":
            parts.append(dn[start:i])
            start = i + 1
        i += 1
    parts.append(dn[start:])
    return parts


def _unescape(value: str) -> str:
    """RFC 4514 escapes: ``\\,`` for a special character, ``\\c3\\a9`` for UTF-8 bytes."""
    out, i = bytearray(), 0
    while i < len(value):
        pair = value[i + 1 : i + 3]
        if value[i] == "\\" and re.fullmatch(r"[0-9A-Fa-f]{2}", pair):
            out.append(int(pair, 16))
            i += 3
        elif value[i] == "\\" and i + 1 < len(value):
            out += value[i + 1].encode()
            i += 2
        else:
            out += value[i].encode()
            i += 1
    return out.decode("utf-8", errors="replace")
