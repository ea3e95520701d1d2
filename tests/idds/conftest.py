"""A real Orchid server per module (tests/client/serverkit.py) for the iDDS client tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client.serverkit import Server, serve


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("orchid")) as running:
        yield running
