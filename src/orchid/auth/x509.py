"""X.509 callers: the client DN a trusted TLS-terminating proxy passes in a header."""

from __future__ import annotations

import ipaddress

from orchid.auth.config import MAX_USER_CHARS, AuthConfig
from orchid.auth.errors import Unauthenticated
from orchid.auth.names import dn_name, parse_dn
from orchid.core.model import Principal


def trusted(config: AuthConfig, client_host: str | None) -> bool:
    """Is the socket peer one of the trusted proxies (the only ones whose DN header counts)?"""
    if not client_host:
        return False
    try:
        ip = ipaddress.ip_address(client_host.strip("[]").split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in config.networks)


def principal(config: AuthConfig, dn: str) -> Principal:
    """The caller a client DN names: mapped by the user map, else its CN where
    ``x509_cn_names`` says so, else the whole DN in its own namespace."""
    try:
        key = parse_dn(dn)
    except ValueError as exc:
        raise Unauthenticated("malformed client DN", str(exc)) from None
    user = config.dn_user_keys.get(key)
    if user is None and config.x509_cn_names:
        user = next((value for attribute, value in key if attribute == "CN"), "")
        if not user:
            raise Unauthenticated("the client DN has no CN", "map it in ORCHID_USER_MAP")
    elif user is None:
        user = dn_name(key)  # its own namespace: "/C=..." is no OIDC name, nor a CN
    if not user.isprintable():
        raise Unauthenticated("malformed client DN", "it holds control characters")
    if len(user) > MAX_USER_CHARS:
        raise Unauthenticated(
            "user name too long",
            f"more than {MAX_USER_CHARS} characters: map the DN in ORCHID_USER_MAP",
        )
    groups = config.dn_group_keys.get(key, frozenset())
    admin = not groups.isdisjoint(config.admin_groups)
    return Principal(user=user, groups=groups, admin=admin, method="x509")
