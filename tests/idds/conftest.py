"""A real Orchid server per module (tests/client/serverkit.py) for the iDDS client tests, on
SQLite and on the machine's PostgreSQL (this session's database, emptied first); and the
real iDDS server (tests/idds/idds_server.py) for the tests that compare the two."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from orchid.store.db import Database
from orchid.store.tables import metadata
from tests.client.serverkit import Server, serve
from tests.idds import idds_server


def _empty(url: str) -> None:
    db = Database(url)
    with db.begin() as conn:
        names = ", ".join(t.name for t in reversed(metadata.sorted_tables))
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    db.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    options = {}
    if request.param == "postgres":
        options["db"] = request.getfixturevalue("pg_url")
        _empty(options["db"])
    with serve(tmp_path_factory.mktemp("orchid"), **options) as running:
        yield running


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[idds_server.IddsServer]:
    """PyPI's iDDS REST server, on a PostgreSQL database of its own (dropped at the end)."""
    if not idds_server.available():
        pytest.fail("the iDDS server venv is missing: `make .venv-iddsserver/.installed`")
    srv = idds_server.start(tmp_path_factory.mktemp("idds"))
    yield srv
    srv.stop()
