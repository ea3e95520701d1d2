"""The socket peer of a request, and forwarded headers taken from trusted proxies only.

uvicorn, by default, rewrites a request's client address from ``X-Forwarded-For`` when the
connection comes from 127.0.0.1; a check of "does this come from a trusted proxy?" made on
that address then believes whatever the header says, and anyone on the server's host could
send an X.509 DN as a proxy would. So Orchid serves with uvicorn's handling off
(``proxy_headers=False``) and does it here: :class:`RealPeer` records the socket's peer
before anything may rewrite it, and applies ``X-Forwarded-For``/``-Proto`` only to
requests whose peer is one of ``ORCHID_TRUSTED_PROXIES`` (the same list that may send the
DN header). The authenticator reads :func:`peer`, never ``request.client``.

Running the application under another server, turn its proxy-header handling off (for
uvicorn: ``--no-proxy-headers``); this middleware then does what it should.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

PEER_KEY = "orchid.peer"  # in the ASGI scope: the socket peer's address (None: unknown)


class RealPeer:
    """ASGI middleware: keeps the socket peer in the scope, then lets trusted proxies (only)
    rewrite the client address and scheme from their forwarded headers."""

    def __init__(self, app: ASGIApp, trusted_proxies: Sequence[str] = ()) -> None:
        self.app = app
        self.inner = app
        if trusted_proxies:
            forwarded = ProxyHeadersMiddleware(app, trusted_hosts=list(trusted_proxies))  # type: ignore[arg-type]
            self.inner = forwarded  # type: ignore[assignment]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and PEER_KEY not in scope:
            client = scope.get("client")
            scope[PEER_KEY] = client[0] if client else None
        await self.inner(scope, receive, send)


def peer(connection: HTTPConnection) -> str | None:
    """The address the request came from on the socket (not what a header claims)."""
    if PEER_KEY in connection.scope:
        found: str | None = connection.scope[PEER_KEY]
        return found
    return connection.client.host if connection.client else None
