"""How callers authenticate: :class:`AuthConfig`, read from ``ORCHID_OIDC_*``,
``ORCHID_TRUSTED_PROXIES``, ``ORCHID_DN_HEADER``, ``ORCHID_X509_CN_NAMES``,
``ORCHID_ADMIN_GROUPS`` and the user map, and checked when made."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from orchid.auth.names import DnKey, UserMap, check_mapped_name, load_user_map, parse_dn
from orchid.errors import ConfigError
from orchid.settings import AuthSettings, section_from_env

MAX_USER_CHARS = 200  # the width of the owner and user columns
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
V = TypeVar("V")


@dataclass(frozen=True)
class AuthConfig:
    """How callers authenticate. OIDC is on when ``oidc_issuer`` is set; X.509 DNs are only
    taken from ``trusted_proxies`` (which must strip the header from client requests)."""

    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None  # None: discovered from the issuer's openid-configuration
    user_claim: str = "preferred_username"  # falls back to ``sub``
    groups_claim: str = "groups"  # a claim name, or a dotted path like realm_access.roles
    admin_groups: frozenset[str] = frozenset()
    jwks_ttl_s: float = 300.0
    leeway_s: float = 30.0
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    trusted_proxies: tuple[str, ...] = ()  # IP addresses or CIDR networks
    dn_header: str = "X-SSL-Client-DN"
    dn_users: Mapping[str, str] = field(default_factory=dict)  # DN → user (default: the DN)
    x509_groups: Mapping[str, frozenset[str]] = field(default_factory=dict)  # DN → groups
    x509_cn_names: bool = False  # an unmapped DN's user is its CN (not the whole DN)
    oidc_users: Mapping[str, str] = field(default_factory=dict)  # claim → user (oidc:claim)
    # derived in __post_init__: parsed networks, and the DN maps keyed by parsed DN
    networks: tuple[Network, ...] = field(init=False, repr=False, compare=False)
    dn_user_keys: Mapping[DnKey, str] = field(init=False, repr=False, compare=False)
    dn_group_keys: Mapping[DnKey, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.oidc_issuer is None and (self.oidc_audience or self.oidc_jwks_url):
            raise ConfigError(
                "ORCHID_OIDC_AUDIENCE or ORCHID_OIDC_JWKS_URL is set without ORCHID_OIDC_ISSUER: "
                "set the issuer to turn OIDC on, or unset the others"
            )
        if self.oidc_issuer is not None:
            check_url(self.oidc_issuer, "ORCHID_OIDC_ISSUER")
            if not self.oidc_audience:
                raise ConfigError(
                    "ORCHID_OIDC_AUDIENCE must be set with ORCHID_OIDC_ISSUER: without an "
                    "audience check, tokens issued to any client of the identity provider pass"
                )
        if self.oidc_jwks_url is not None:
            check_url(self.oidc_jwks_url, "ORCHID_OIDC_JWKS_URL")
        for label, claim in (
            ("ORCHID_OIDC_USER_CLAIM", self.user_claim),
            ("ORCHID_OIDC_GROUPS_CLAIM", self.groups_claim),
        ):
            if not claim or any(not part for part in claim.split(".")):
                raise ConfigError(f"{label}={claim!r} must be a claim name or a dotted path")
        bad = [a for a in self.algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if bad or not self.algorithms:
            raise ConfigError(
                f"algorithms {list(self.algorithms)!r}: use one or more of "
                f"{sorted(ASYMMETRIC_ALGORITHMS)} (never none or HS*, which a public key cannot check)"
            )
        if not (self.jwks_ttl_s > 0 and self.leeway_s >= 0):
            raise ConfigError("jwks_ttl_s must be positive and leeway_s not negative")
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", self.dn_header):
            raise ConfigError(f"ORCHID_DN_HEADER={self.dn_header!r} is not an HTTP header name")
        object.__setattr__(self, "admin_groups", frozenset(self.admin_groups))
        object.__setattr__(self, "networks", tuple(_network(p) for p in self.trusted_proxies))
        for label, names in (("oidc_users", self.oidc_users), ("dn_users", self.dn_users)):
            for key, name in names.items():
                check_mapped_name(name, f"{label} {key!r}")
        object.__setattr__(self, "dn_user_keys", _by_dn(self.dn_users, "dn_users"))
        groups = {dn: frozenset(g) for dn, g in self.x509_groups.items()}
        object.__setattr__(self, "dn_group_keys", _by_dn(groups, "x509_groups"))

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> AuthConfig:
        """From the ``[auth]`` settings (the settings file, ``ORCHID_OIDC_*``,
        ``ORCHID_ADMIN_GROUPS``, ...: see :class:`orchid.settings.AuthSettings`) and the
        file of ``user_map`` (see :mod:`orchid.auth.names`)."""
        path = settings.user_map
        users = load_user_map(Path(path).expanduser()) if path else UserMap()
        return cls(
            oidc_users=users.oidc,
            dn_users=users.x509,
            x509_groups=users.x509_groups,
            x509_cn_names=settings.x509_cn_names,
            oidc_issuer=settings.oidc_issuer or None,
            oidc_audience=settings.oidc_audience or None,
            oidc_jwks_url=settings.oidc_jwks_url or None,
            user_claim=settings.oidc_user_claim or cls.user_claim,
            groups_claim=settings.oidc_groups_claim or cls.groups_claim,
            admin_groups=frozenset(_csv(settings.admin_groups)),
            trusted_proxies=tuple(_csv(settings.trusted_proxies)),
            dn_header=settings.dn_header or cls.dn_header,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuthConfig:
        """From the environment alone (no settings file): see :meth:`from_settings`."""
        return cls.from_settings(section_from_env(AuthSettings, env))


def _csv(raw: str | None) -> list[str]:
    return [item.strip() for item in (raw or "").split(",") if item.strip()]


def check_url(url: str, label: str) -> None:
    """An identity provider URL must be https (plain http only for loopback)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and (host == "localhost" or _is_loopback(host)):
        return
    raise ConfigError(
        f"{label}={url!r} must be an https:// URL (plain http only for localhost): "
        "the signing keys must not be open to tampering on the way"
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _network(text: str) -> Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ConfigError(
            f"ORCHID_TRUSTED_PROXIES: {text!r} is not an IP address or network "
            "(e.g. 10.0.0.5, 10.0.0.0/24, fd00::/8)"
        ) from None


def _by_dn(mapping: Mapping[str, V], label: str) -> dict[DnKey, V]:
    out: dict[DnKey, V] = {}
    for dn, value in mapping.items():
        try:
            out[parse_dn(dn)] = value
        except ValueError as exc:
            raise ConfigError(f"{label}: {dn!r} is not a distinguished name: {exc}") from None
    return out
