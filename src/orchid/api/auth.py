"""Who is calling: OIDC bearer tokens, X.509 DNs from a trusted proxy, and local API tokens.

Framework-neutral on purpose: the HTTP layer hands over the request headers and the
peer address and gets a :class:`Principal` (or ``None`` for an anonymous request) or an
:class:`AuthError` back. Authorization rules live here too, in :func:`can_see` and
:func:`can_act`, so that every endpoint asks the same question the same way.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jwt

from orchid.api.names import (
    OIDC_PREFIX,
    DnKey,
    UserMap,
    check_mapped_name,
    dn_name,
    load_user_map,
    parse_dn,
)
from orchid.core.model import Principal, name_problem
from orchid.errors import ConfigError, OrchidError
from orchid.settings import AuthSettings, section_from_env
from orchid.store.tokens import LOCAL_TOKEN_PREFIX  # local tokens start with it; else a JWT

log = logging.getLogger(__name__)

REFETCH_INTERVAL_S = 10.0  # unscheduled JWKS fetches (unknown kid, retry after failure)
MAX_TOKEN_CHARS = 16384
MAX_USER_CHARS = 200  # the width of the owner and user columns
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
IDP_DOWN = "cannot reach the identity provider"
IDP_BAD = "the identity provider sent unusable keys"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
V = TypeVar("V")


# --- errors ---------------------------------------------------------------------------------


class AuthError(OrchidError):
    """Authentication failed. ``reason`` is short, fixed text (never caller data), fit for a
    ``WWW-Authenticate`` header; the message adds the details for logs and people."""

    error = "invalid_request"  # the RFC 6750 error code

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class Unauthenticated(AuthError):
    """No usable credentials: missing, malformed, expired, unknown or revoked (HTTP 401)."""

    error = "invalid_token"


class Forbidden(AuthError):
    """Credentials were presented in a way this server does not allow (HTTP 403)."""

    error = "insufficient_scope"


def www_authenticate(exc: AuthError | None = None, realm: str = "orchid") -> str:
    """The ``WWW-Authenticate`` value for a 401/403 (``exc`` None: credentials were missing)."""
    value = f'Bearer realm="{_quotable(realm)}"'
    if exc is not None:
        value += f', error="{exc.error}", error_description="{_quotable(exc.reason)}"'
    return value


def _quotable(text: str) -> str:
    return "".join(c for c in text if c.isascii() and c.isprintable() and c not in '"\\')


# --- configuration --------------------------------------------------------------------------


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
            _check_url(self.oidc_issuer, "ORCHID_OIDC_ISSUER")
            if not self.oidc_audience:
                raise ConfigError(
                    "ORCHID_OIDC_AUDIENCE must be set with ORCHID_OIDC_ISSUER: without an "
                    "audience check, tokens issued to any client of the identity provider pass"
                )
        if self.oidc_jwks_url is not None:
            _check_url(self.oidc_jwks_url, "ORCHID_OIDC_JWKS_URL")
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
        file of ``user_map`` (see :mod:`orchid.api.names`)."""
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


def _check_url(url: str, label: str) -> None:
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


# --- OIDC -----------------------------------------------------------------------------------


class _IdpFailure(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class OidcVerifier:
    """Checks OIDC access tokens (JWTs) against the issuer's published keys (JWKS).

    The JWKS is cached for ``jwks_ttl_s``; a token signed with an unknown ``kid`` triggers
    one refetch (key rotation), at most once per ``REFETCH_INTERVAL_S`` whatever tokens
    arrive. When the identity provider cannot be reached, the keys fetched last stay in use.
    ``clock`` gives epoch seconds; it times the cache and the ``exp``/``nbf``/``iat`` checks.
    Thread-safe: one instance serves every request.
    """

    def __init__(
        self, config: AuthConfig, http: httpx.Client, clock: Callable[[], float] = time.time
    ) -> None:
        if not config.oidc_issuer or not config.oidc_audience:
            raise ConfigError("OIDC needs ORCHID_OIDC_ISSUER and ORCHID_OIDC_AUDIENCE")
        self._config = config
        self._issuer: str = config.oidc_issuer
        self._audience: str = config.oidc_audience
        self._http = http
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks_url = config.oidc_jwks_url
        self._keys: dict[str, jwt.PyJWK] | None = None  # by kid; None until a fetch succeeds
        self._unnamed: list[jwt.PyJWK] = []  # keys without a kid
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._failure: _IdpFailure | None = None  # the last attempt's, if it failed

    def verify(self, token: str) -> Principal:
        """The caller a token names, or :class:`Unauthenticated` saying what is wrong with it."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("malformed token", str(exc)) from None
        alg, kid = header.get("alg"), header.get("kid")
        # checked before any key lookup, so that junk tokens cannot cause JWKS fetches
        if not isinstance(alg, str) or alg not in self._config.algorithms:
            raise Unauthenticated(
                "algorithm not allowed",
                f"{str(alg)[:20]!r}; this server accepts {', '.join(self._config.algorithms)}",
            )
        now = self._clock()
        key = self._key_for(kid if isinstance(kid, str) else None, now)
        if key.algorithm_name != alg:
            raise Unauthenticated(
                "algorithm does not match the key", f"{alg} token, {key.algorithm_name} key"
            )
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                # times are checked below against the injected clock
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "iss", "aud"],
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.InvalidSignatureError:
            raise Unauthenticated("bad signature") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("wrong audience", f"expected {self._audience!r}") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("wrong issuer", f"expected {self._issuer!r}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated("token lacks a required claim", exc.claim) from None
        except jwt.InvalidKeyError as exc:
            raise Unauthenticated("the signing key is too weak", str(exc)) from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated("malformed token", str(exc)) from None
        self._check_times(claims, now)
        return self._principal(claims)

    def _key_for(self, kid: str | None, now: float) -> jwt.PyJWK:
        with self._lock:
            stale = self._keys is None or now - self._fetched_at >= self._config.jwks_ttl_s
            if stale and (self._failure is None or now - self._attempted_at >= REFETCH_INTERVAL_S):
                self._refresh(now)
            key = self._find(kid)
            if key is None and now - self._attempted_at >= REFETCH_INTERVAL_S:
                self._refresh(now)  # maybe the issuer rotated its keys
                key = self._find(kid)
            if key is not None:
                return key
            if self._failure is not None:
                raise Unauthenticated(self._failure.reason, str(self._failure))
            if kid is None:
                raise Unauthenticated("unknown signing key", "the token names no key (kid)")
            raise Unauthenticated("unknown signing key", f"kid {kid[:64]!r}")

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if self._keys is None:
            return None
        if kid is None:
            everything = [*self._keys.values(), *self._unnamed]
            return everything[0] if len(everything) == 1 else None
        return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        """Fetch the JWKS; on failure keep the keys there are and remember why."""
        self._attempted_at = now
        try:
            keys = self._fetch()
        except _IdpFailure as exc:
            self._failure = exc
            log.warning(
                "%s (%s)%s", exc.reason, exc, "; using the cached keys" if self._keys else ""
            )
            return
        self._failure = None
        self._fetched_at = now
        self._keys = {k.key_id: k for k in keys if k.key_id is not None}
        self._unnamed = [k for k in keys if k.key_id is None]

    def _fetch(self) -> list[jwt.PyJWK]:
        url = self._jwks_url or self._discover()
        data = self._get_json(url)
        raw = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(raw, list):
            raise _IdpFailure(IDP_BAD, f"{url} has no 'keys' list")
        # signing keys only; symmetric ("oct") keys never belong in a public JWKS
        usable = [
            k
            for k in raw
            if isinstance(k, dict) and k.get("use", "sig") == "sig" and k.get("kty") != "oct"
        ]
        try:
            return list(jwt.PyJWKSet(usable))
        except jwt.PyJWTError as exc:
            raise _IdpFailure(IDP_BAD, f"{url}: {exc}") from None

    def _discover(self) -> str:
        """The issuer's ``jwks_uri``, looked up once and kept for this verifier's life."""
        url = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = self._get_json(url)
        uri = doc.get("jwks_uri") if isinstance(doc, dict) else None
        if not isinstance(uri, str):
            raise _IdpFailure(IDP_BAD, f"{url} has no jwks_uri")
        try:
            _check_url(uri, "jwks_uri")
        except ConfigError as exc:
            raise _IdpFailure(IDP_BAD, str(exc)) from None
        self._jwks_url = uri
        return uri

    def _get_json(self, url: str) -> Any:
        try:
            response = self._http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            return response.json()
        except httpx.HTTPError as exc:
            raise _IdpFailure(IDP_DOWN, f"GET {url}: {exc}") from None
        except ValueError:
            raise _IdpFailure(IDP_BAD, f"GET {url}: the response is not JSON") from None

    def _check_times(self, claims: Mapping[str, Any], now: float) -> None:
        leeway = self._config.leeway_s
        exp, nbf, iat = (_time_claim(claims, name) for name in ("exp", "nbf", "iat"))
        if exp is not None and now >= exp + leeway:
            raise Unauthenticated("token expired", f"{now - exp:.0f} s ago (leeway {leeway:g} s)")
        for name, value in (("nbf", nbf), ("iat", iat)):
            if value is not None and value > now + leeway:
                raise Unauthenticated(
                    "token not yet valid", f"{name} is {value - now:.0f} s in the future"
                )

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        user = _claim(claims, self._config.user_claim)
        if not (isinstance(user, str) and user.strip()):
            user = claims.get("sub")
        if not (isinstance(user, str) and user.strip()):
            raise Unauthenticated(
                "token names no user", f"neither {self._config.user_claim!r} nor 'sub' is set"
            )
        problem = name_problem(user)
        if problem is not None:
            raise Unauthenticated("unusable user name", problem)
        name = self._config.oidc_users.get(user) or OIDC_PREFIX + user
        if len(name) > MAX_USER_CHARS:
            raise Unauthenticated("user name too long", f"more than {MAX_USER_CHARS} characters")
        groups = _groups(_claim(claims, self._config.groups_claim))
        admin = not groups.isdisjoint(self._config.admin_groups)
        return Principal(user=name, groups=groups, admin=admin, method="oidc")


def _time_claim(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unauthenticated("malformed token", f"{name} is not a number")
    return float(value)


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, else by dotted path (names may contain dots: ``https://x.org/groups``)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _groups(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset([value]) if value else frozenset()
    if isinstance(value, list):
        return frozenset(g for g in value if isinstance(g, str) and g)
    if value is not None:
        log.warning(
            "the groups claim is a %s, not a list of strings; ignored", type(value).__name__
        )
    return frozenset()


# --- the authenticator ----------------------------------------------------------------------


class Authenticator:
    """Turns a request's headers and peer address into a :class:`Principal`.

    A client-DN header wins (and is refused unless the socket peer, see
    :func:`orchid.api.peers.peer`, is a trusted proxy); then
    ``Authorization: Bearer``: local tokens (``orc_…``) go to ``token_lookup``, anything
    else to the OIDC verifier. No credentials at all gives ``None``: the caller decides
    whether anonymous access is allowed.
    """

    def __init__(
        self,
        config: AuthConfig,
        verifier: OidcVerifier | None,
        token_lookup: Callable[[str], Principal | None],
    ) -> None:
        self._config = config
        self._verifier = verifier
        self._token_lookup = token_lookup
        self._dn_header = config.dn_header.lower()

    def authenticate(self, headers: Mapping[str, str], client_host: str | None) -> Principal | None:
        normal: dict[str, list[str]] = {}
        for name, value in headers.items():
            normal.setdefault(name.lower(), []).append(value.strip())
        # an empty DN header means "no client certificate" (what some proxies send)
        dns = [v for v in normal.get(self._dn_header, []) if v]
        if dns:
            if not self._trusted(client_host):
                raise Forbidden("the client-DN header is only accepted from a trusted proxy")
            return self._x509(_one(dns, "client-DN"))
        auths = normal.get("authorization")
        if not auths:
            return None
        token = _bearer(_one(auths, "Authorization"))
        if token.startswith(LOCAL_TOKEN_PREFIX):
            principal = self._token_lookup(token)
            if principal is None:
                raise Unauthenticated("unknown or revoked token")
            return principal
        if self._verifier is None:
            raise Unauthenticated("OIDC is not configured on this server")
        return self._verifier.verify(token)

    def _trusted(self, client_host: str | None) -> bool:
        if not client_host:
            return False
        try:
            ip = ipaddress.ip_address(client_host.strip("[]").split("%")[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._config.networks)

    def _x509(self, dn: str) -> Principal:
        try:
            key = parse_dn(dn)
        except ValueError as exc:
            raise Unauthenticated("malformed client DN", str(exc)) from None
        user = self._config.dn_user_keys.get(key)
        if user is None and self._config.x509_cn_names:
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
        groups = self._config.dn_group_keys.get(key, frozenset())
        admin = not groups.isdisjoint(self._config.admin_groups)
        return Principal(user=user, groups=groups, admin=admin, method="x509")


def _one(values: list[str], what: str) -> str:
    if len(set(values)) > 1:
        raise Unauthenticated(f"conflicting {what} headers")
    return values[0]


def _bearer(value: str) -> str:
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if not scheme or not token or any(c.isspace() for c in token):
        raise Unauthenticated("malformed Authorization header", "expected 'Bearer <token>'")
    if scheme.lower() != "bearer":
        raise Unauthenticated("unsupported authorization scheme", "expected 'Bearer <token>'")
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthenticated("malformed token", f"longer than {MAX_TOKEN_CHARS} characters")
    return token


# --- authorization --------------------------------------------------------------------------


def can_see(principal: Principal, owner: str, group: str | None) -> bool:
    """May this caller read a resource (workflow, work, job, log) owned by ``owner``?"""
    return (
        principal.admin
        or principal.user == owner
        or (group is not None and group in principal.groups)
    )


def can_act(principal: Principal, owner: str, group: str | None) -> bool:
    """May this caller change it (abort, suspend, resume, retry)? The same rule as
    :func:`can_see` for now; kept apart so that the two can diverge in one place."""
    return can_see(principal, owner, group)
