"""Who is calling: OIDC bearer tokens, X.509 DNs from a trusted proxy, and local API tokens.

- :mod:`~orchid.auth.config`: :class:`AuthConfig`, how callers authenticate;
- :mod:`~orchid.auth.names`: the user names of each method and the admin's user map;
- :mod:`~orchid.auth.oidc`: :class:`OidcVerifier`, JWTs against the issuer's keys;
- :mod:`~orchid.auth.x509`: client DNs from a trusted proxy;
- :mod:`~orchid.auth.policy`: :class:`Authenticator` and the rules :func:`can_see` and
  :func:`can_act`;
- :mod:`~orchid.auth.errors`: :class:`AuthError` and its two kinds.

Framework-neutral: the API and the UI both hand over headers and the peer address.
"""

from orchid.auth.config import AuthConfig
from orchid.auth.errors import AuthError, Forbidden, Unauthenticated, www_authenticate
from orchid.auth.oidc import IDP_BAD, IDP_DOWN, OidcVerifier
from orchid.auth.policy import Authenticator, can_act, can_see

__all__ = [
    "IDP_BAD",
    "IDP_DOWN",
    "AuthConfig",
    "AuthError",
    "Authenticator",
    "Forbidden",
    "OidcVerifier",
    "Unauthenticated",
    "can_act",
    "can_see",
    "www_authenticate",
]
