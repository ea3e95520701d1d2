"""The one real PanDA of a test session, for every module that runs on it.

Session fixtures in a plugin (registered by tests/conftest.py), so that tests/executors'
and tests/idds' PanDA tests share one panda-server + JEDI (it takes minutes to start):
each such test is in xdist group ``panda``, so one worker runs them all and starts it
once. ``real_panda`` is the server (tests/executors/panda_server.py), ``real_panda_pilot``
the stand-in pilot taking its queue's jobs (tests/executors/panda_pilot.py).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from tests.executors import panda_server
from tests.executors.panda_pilot import StandInPilot


@pytest.fixture(scope="session")
def real_panda(tmp_path_factory: pytest.TempPathFactory) -> Iterator[panda_server.PandaServer]:
    if not panda_server.available():
        if os.environ.get("CI"):
            pytest.fail("the PanDA venv is missing: `make .venv-panda/.installed`")
        pytest.skip("no PanDA venv (.venv-panda); `make .venv-panda/.installed`")
    try:
        socket.create_connection(("127.0.0.1", panda_server.STOMP_PORT), timeout=3).close()
    except OSError as exc:
        pytest.skip(f"no STOMP broker on 127.0.0.1:61613 (`make services`): {exc}")
    srv = panda_server.start(tmp_path_factory.mktemp("panda"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def real_panda_pilot(
    real_panda: panda_server.PandaServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StandInPilot]:
    with StandInPilot(
        real_panda.api,
        panda_server.SITE,
        tmp_path_factory.mktemp("pilot"),
        prod_source_label=panda_server.PROD_SOURCE_LABEL,
        slots=8,
        heartbeat=1.0,
    ) as p:
        yield p
