"""``orchid server`` as deployed: uvicorn really serving, started as a subprocess.

The trusted-proxy check of the X.509 DN header must see the socket's peer: uvicorn's own
proxy-header handling (on by default, trusting 127.0.0.1) used to rewrite the client address
from ``X-Forwarded-For`` first, so anyone on the server's host could claim to be a proxy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.cli.test_remote import clean_env, free_port, start, stop, wait_for_ping

pytestmark = pytest.mark.timeout(120)
ADMIN_DN = "/C=CH/O=Lab/CN=admin"


@contextmanager
def server(tmp_path: Path, trusted_proxies: str) -> Iterator[str]:
    """`orchid server` on 127.0.0.1 with ORCHID_TRUSTED_PROXIES; its API's URL."""
    env = {**clean_env(tmp_path), "ORCHID_TRUSTED_PROXIES": trusted_proxies}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / f"server-{port}.log"
    proc = start(env, log, "server", "--db", str(tmp_path / "orchid.db"), "--port", str(port))
    try:
        wait_for_ping(url, proc, log)
        yield f"{url}/api/v1"
    finally:
        stop(proc)


def test_x_forwarded_for_does_not_make_a_local_caller_a_trusted_proxy(tmp_path: Path) -> None:
    """The finding: with ORCHID_TRUSTED_PROXIES=10.9.9.9, a request from the server's host
    with the DN header and ``X-Forwarded-For: 10.9.9.9`` was taken as user admin."""
    with server(tmp_path, "10.9.9.9") as api:
        for forwarded in ("10.9.9.9", "203.0.113.7, 10.9.9.9", "10.9.9.9, 127.0.0.1"):
            headers = {"X-SSL-Client-DN": ADMIN_DN, "X-Forwarded-For": forwarded}
            for path in ("/whoami", "/workflows"):
                r = httpx.get(api + path, headers=headers)
                assert r.status_code == 403, (forwarded, r.text)
                assert "trusted proxy" in r.json()["error"]


def test_a_proxy_on_the_server_host_is_trusted_by_its_socket_address(tmp_path: Path) -> None:
    """A real proxy beside the server: its DN header counts (the user is the whole DN, not
    the CN), and the end user's address it forwards does not hide that it is the proxy."""
    with server(tmp_path, "127.0.0.1") as api:
        headers = {
            "X-SSL-Client-DN": "CN=admin,O=Lab,C=CH",
            "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Proto": "https",
        }
        r = httpx.get(api + "/whoami", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "user": ADMIN_DN,
            "groups": [],
            "admin": False,
            "method": "x509",
            "workflow_id": None,
        }
