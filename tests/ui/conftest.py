"""Fixtures of the monitor tests: the API's live server (``tests/api/conftest.py``), and
browser-like httpx clients that log in through the form and keep the session cookie."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api, agents, api, executor_name, noop_template


class Browser:
    """An httpx client that behaves like a browser on the monitor: cookies, same origin."""

    def __init__(self, api: Api) -> None:
        self.root = api.base_url.removesuffix("/api/v1")
        self.http = httpx.Client(base_url=self.root, timeout=30, follow_redirects=False)

    def login(self, token: str) -> httpx.Response:
        return self.post("/ui/login", {"token": token, "next": "/ui/"})

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, data: dict[str, str], **kw: Any) -> httpx.Response:
        headers = {"Origin": self.root, **kw.pop("headers", {})}
        return self.http.post(path, data=data, headers=headers, **kw)

    def csrf(self, path: str) -> str:
        page = self.get(path)
        assert page.status_code == 200, page.text
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert found, "no CSRF token on the page"
        return found.group(1)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def browse(api: Api) -> Any:
    """``browse(user)`` → a logged-in Browser (None: anonymous)."""
    made: list[Browser] = []

    def make(user: str | None = None) -> Browser:
        b = Browser(api)
        made.append(b)
        if user is not None:
            r = b.login(api.tokens[user])
            assert r.status_code == 303, r.text
        return b

    yield make
    for b in made:
        b.close()


__all__ = ["Api", "Browser", "agents", "api", "executor_name", "noop_template"]
