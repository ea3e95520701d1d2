"""`orchid server` stops within seconds on SIGTERM, whatever its requests are doing.

Before, it waited for every request to end: an event stream of a running workflow, an
upload that stalls, or a submission still being validated (in a thread the process would
wait for) kept it alive indefinitely. Every process is started here and stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_limits import chain
from tests.cli.test_remote import clean_env, free_port, orchid, start, wait_for_ping

pytestmark = pytest.mark.timeout(180)
EXIT_BOUND_S = 10.0  # generous: the grace period is 3 s


def test_sigterm_stops_the_server_mid_request(tmp_path: Path) -> None:
    env = {**clean_env(tmp_path), "ORCHID_MAX_WORKS": "200000"}
    db = str(tmp_path / "orchid.db")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    server = start(env, log, "server", "--db", db, "--port", str(port))
    held: list[Any] = []
    try:
        wait_for_ping(url, server, log)
        made = orchid(
            {**env, "ORCHID_DB_URL": f"sqlite:///{db}"}, "token", "create", "--user", "al"
        )
        assert made.returncode == 0, made.stderr
        headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
        api = httpx.Client(base_url=f"{url}/api/v1", headers=headers, timeout=60)
        held.append(api)
        # 1. the event stream of a workflow that runs on (no agents): it never ends
        wf = api.post(
            "/workflows", json={"template": {"name": "x", "works": [{"name": "a", "noop": True}]}}
        )
        assert wf.status_code == 201, wf.text
        stream = api.stream("GET", f"/workflows/{wf.json()['id']}/events")
        response = stream.__enter__()
        assert response.status_code == 200
        held.append(stream)
        # 2. an upload that stalls after its first bytes
        stalled = socket.create_connection(("127.0.0.1", port), timeout=30)
        held.append(stalled)
        stalled.sendall(
            b"POST /api/v1/workflows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: {headers['Authorization']}\r\n".encode()
            + b'Content-Length: 100000\r\n\r\n{"template": '
        )
        # 3. a submission of 100,000 works, being validated in a thread
        body = json.dumps({"template": chain(100_000)}).encode()
        sent = threading.Event()

        def submit() -> None:
            def content() -> Any:
                yield body
                sent.set()

            with contextlib.suppress(httpx.HTTPError):  # the server went away: expected
                api.post(
                    "/workflows", content=content(), headers={"Content-Type": "application/json"}
                )

        threading.Thread(target=submit, daemon=True).start()
        assert sent.wait(60), "the big submission was not sent"
        time.sleep(2.0)  # it is being parsed and validated now
        assert server.poll() is None, log.read_text()

        t0 = time.monotonic()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(EXIT_BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"`orchid server` still running {EXIT_BOUND_S:g} s after SIGTERM:\n{log.read_text()}"
            )
        assert time.monotonic() - t0 < EXIT_BOUND_S
    finally:
        for thing in reversed(held):
            try:
                if isinstance(thing, socket.socket | httpx.Client):
                    thing.close()
                else:
                    thing.__exit__(None, None, None)
            except (httpx.HTTPError, OSError):
                pass
        if server.poll() is None:
            server.kill()
        server.wait(10)
