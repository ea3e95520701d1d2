"""Who is calling and what they may do: :class:`Authenticator` turns a request's headers
and peer address into a :class:`Principal`; :func:`can_see` and :func:`can_act` are the
authorization rules, so that every endpoint asks the same question the same way.
Framework-neutral on purpose: the web layer hands over headers and the peer address."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from orchid.auth import x509
from orchid.auth.config import AuthConfig
from orchid.auth.errors import Forbidden, Unauthenticated
from orchid.auth.oidc import OidcVerifier
from orchid.core.model import Principal
from orchid.store.tokens import LOCAL_TOKEN_PREFIX  # local tokens start with it; else a JWT

MAX_TOKEN_CHARS = 16384


class Authenticator:
    """Turns a request's headers and peer address into a :class:`Principal`.

    A client-DN header wins (and is refused unless the socket peer, see
    :func:`orchid.web.peers.peer`, is a trusted proxy); then
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
            if not x509.trusted(self._config, client_host):
                raise Forbidden("the client-DN header is only accepted from a trusted proxy")
            return x509.principal(self._config, _one(dns, "client-DN"))
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
