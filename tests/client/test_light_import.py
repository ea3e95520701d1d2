"""`import orchid.client` loads the client and the wire models only: someone who talks to a
server needs none of the engine's or the server's packages (issue 17, item 8)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "optuna", "PIL", "jinja2")

PROBE = """
import json, sys
import {module}
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""


def loaded(module: str) -> list[str]:
    """The heavy packages a fresh interpreter holds after importing ``module``."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, heavy=HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found: list[str] = json.loads(proc.stdout)
    return found


def test_import_orchid_client_loads_no_heavy_package() -> None:
    assert loaded("orchid.client") == []


def test_the_probe_sees_a_heavy_import() -> None:
    assert "sqlalchemy" in loaded("orchid.store.db")  # what the test above would catch
