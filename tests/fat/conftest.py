"""Fixtures of the Function-as-a-Task tests: the embedded engine in a temporary home, or a
real server on 127.0.0.1 (see tests/client/serverkit.py), chosen through the environment
as users choose (ORCHID_URL or not)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchid.store.db import Database
from tests.client.serverkit import Server, serve

PAYLOADS = Path(__file__).parent / "payloads"
if str(PAYLOADS) not in sys.path:
    sys.path.insert(0, str(PAYLOADS))


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    monkeypatch.setenv("FAT_MARKS", str(folder))
    # jobs get only the variables named for them: the payloads' markers, the node's cache
    monkeypatch.setenv("ORCHID_ENV_PASSTHROUGH", "FAT_*,ORCHID_FAT_CACHE")
    return folder


def runs(marks: Path, name: str) -> int:
    path = marks / f"{name}.runs"
    return len(path.read_text().split()) if path.exists() else 0


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marks: Path) -> Path:
    """The embedded engine over SQLite in tmp_path (ORCHID_URL unset); returns its home."""
    home = tmp_path / "home"
    monkeypatch.delenv("ORCHID_URL", raising=False)
    monkeypatch.delenv("ORCHID_DB_URL", raising=False)
    monkeypatch.setenv("ORCHID_HOME", str(home))
    monkeypatch.setenv("ORCHID_WORKERS", "2")
    monkeypatch.setenv("ORCHID_FAT_CACHE", str(tmp_path / "node-cache"))
    return home


@pytest.fixture
def embedded_db(embedded: Path, db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The embedded engine over the ``db`` fixture (SQLite and PostgreSQL)."""
    monkeypatch.setenv("ORCHID_DB_URL", db.url)
    return db


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("fat-server")) as srv:
        yield srv


@pytest.fixture
def remote(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marks: Path) -> Server:
    """Talk to the test server as alice (ORCHID_URL, ORCHID_TOKEN)."""
    monkeypatch.setenv("ORCHID_URL", server.url)
    monkeypatch.setenv("ORCHID_TOKEN", server.tokens["alice"])
    monkeypatch.setenv("ORCHID_FAT_CACHE", str(tmp_path / "node-cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return server
