"""The socket peer is kept before anything rewrites the client, and forwarded headers count
from trusted proxies only (``orchid.web.peers``; the uvicorn end of it is in
``tests/cli/test_service.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse

from orchid.web.peers import RealPeer, peer

TRUSTED = ("10.9.9.9", "192.168.7.0/24")


async def echo(scope: Any, receive: Any, send: Any) -> None:
    request = Request(scope, receive)
    client = request.client.host if request.client else None
    body = {"peer": peer(request), "client": client, "scheme": request.url.scheme}
    await JSONResponse(body)(scope, receive, send)


def seen(app: Any, socket_peer: str, **headers: str) -> dict[str, Any]:
    async def get() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app, client=(socket_peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://orchid") as c:
            out: dict[str, Any] = (await c.get("/", headers=headers)).json()
            return out

    return asyncio.run(get())


FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}


@pytest.mark.parametrize("proxy", ["10.9.9.9", "192.168.7.20"])
def test_a_trusted_proxy_forwards_the_client_and_scheme_but_stays_the_peer(proxy: str) -> None:
    got = seen(RealPeer(echo, TRUSTED), proxy, **FORWARDED)
    assert got == {"peer": proxy, "client": "203.0.113.7", "scheme": "https"}


@pytest.mark.parametrize("caller", ["127.0.0.1", "10.9.9.8", "192.168.8.1"])
def test_anyone_else_forwards_nothing(caller: str) -> None:
    for headers in (FORWARDED, {"X-Forwarded-For": "10.9.9.9"}):
        got = seen(RealPeer(echo, TRUSTED), caller, **headers)
        assert got == {"peer": caller, "client": caller, "scheme": "http"}


def test_without_trusted_proxies_nothing_is_rewritten() -> None:
    got = seen(RealPeer(echo), "127.0.0.1", **FORWARDED)
    assert got == {"peer": "127.0.0.1", "client": "127.0.0.1", "scheme": "http"}


def test_the_peer_is_the_client_when_nothing_recorded_it() -> None:
    got = seen(echo, "10.1.2.3")
    assert got["peer"] == "10.1.2.3"
