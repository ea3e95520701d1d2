"""How the API is served: connections accepted on a listening socket we bind ourselves.

asyncio turns Nagle's algorithm off (TCP_NODELAY) on accepted connections only when the
listening socket was made with ``proto=IPPROTO_TCP``; ``socket.socket(AF_INET,
SOCK_STREAM)`` has proto 0, and then every response whose headers and body are written
separately (all of uvicorn's) waits for the client's delayed ACK: about 40 ms a request.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
from collections.abc import Callable

import pytest

from tests.api.conftest import serve


def nodelay_of_accepted(sock: socket.socket) -> int:
    """TCP_NODELAY of a connection accepted by an asyncio server on ``sock``."""

    async def main() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                s = transport.get_extra_info("socket")
                seen.set_result(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        async with server:
            port = sock.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            value = await asyncio.wait_for(seen, 10)
            writer.close()
            return value

    return asyncio.run(main())


def test_the_probe_sees_nagle_on_and_off() -> None:
    for proto, expected in ((socket.IPPROTO_TCP, True), (0, False)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
        sock.bind(("127.0.0.1", 0))
        assert bool(nodelay_of_accepted(sock)) is expected


def test_the_test_server_turns_nagle_off() -> None:
    async def app(scope: dict[str, object], receive: Callable[..., object], send: object) -> None:
        return None

    server, thread, port = serve(app)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass
        (listener,) = [s for srv in server.servers for s in srv.sockets]
        assert listener.proto == socket.IPPROTO_TCP
    finally:
        server.should_exit = True
        thread.join(10)


def test_orchid_up_turns_nagle_off() -> None:
    listen = None
    for name in ("orchid.cli.service", "orchid.cli.main"):  # it moved once already
        listen = getattr(importlib.import_module(name), "_listen", None) or listen
    if listen is None:
        pytest.skip("the CLI no longer has a _listen helper; check how `orchid up` listens")
    sock = listen("127.0.0.1", 0)
    assert nodelay_of_accepted(sock) != 0
