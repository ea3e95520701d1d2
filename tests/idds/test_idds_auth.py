"""Who may use the iDDS routes, besides tokens: an X.509 DN forwarded by the trusted proxy
(what an iDDS client with ``auth_type = x509_proxy`` becomes behind it), and from no one
else. The application is called in-process, as from the proxy's address and another."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from orchid.auth import AuthConfig
from orchid.server import create_app
from orchid.settings import Settings
from orchid.store.db import Database

DN = "/C=CH/O=Lab/CN=Alice Smith"
HPO = {"request_type": 4, "request_metadata": {"opt_space": {"x": [0.0, 1.0]}, "max_points": 2}}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    settings = Settings.load(env={}, home=tmp_path, db=str(tmp_path / "o.db"))
    db = Database(settings.db_url)
    auth = AuthConfig(trusted_proxies=("10.0.0.0/8",), dn_users={DN: "alice"})
    yield create_app(settings, auth, db=db)
    db.dispose()


def from_host(app: Any, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 4321))
    return httpx.AsyncClient(transport=transport, base_url="http://orchid")


def test_a_dn_from_the_trusted_proxy_is_its_user_and_from_no_one_else(app: Any) -> None:
    dn = {"X-SSL-Client-DN": DN}

    async def calls() -> list[httpx.Response]:
        async with from_host(app, "10.1.2.3") as proxy, from_host(app, "192.0.2.7") as other:
            made = await proxy.post("/idds/request", json=HPO, headers=dn)
            rid = made.json()["request_id"]
            mine = await proxy.get(f"/idds/request/{rid}/null/False", headers=dn)
            forged = await other.get(f"/idds/request/{rid}/null/False", headers=dn)
        return [made, mine, forged]

    made, mine, forged = anyio.run(calls)
    assert made.status_code == 200, made.text
    assert mine.status_code == 200 and mine.json()[0]["username"] == "alice"
    assert forged.status_code == 403
    assert forged.headers["ExceptionClass"] == "AuthenticationNoPermission"
    assert "trusted proxy" in forged.headers["ExceptionMessage"]
