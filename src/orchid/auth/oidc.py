"""OIDC access tokens (JWTs) checked against the issuer's published keys."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt

from orchid.auth.config import MAX_USER_CHARS, AuthConfig, check_url
from orchid.auth.errors import Unauthenticated
from orchid.auth.names import OIDC_PREFIX
from orchid.core.model import Principal, name_problem
from orchid.errors import ConfigError

log = logging.getLogger(__name__)

REFETCH_INTERVAL_S = 10.0  # unscheduled JWKS fetches (unknown kid, retry after failure)
IDP_DOWN = "cannot reach the identity provider"
IDP_BAD = "the identity provider sent unusable keys"


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
            check_url(uri, "jwks_uri")
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
