"""The real iDDS client against a real Orchid server: scripts run in ``.venv-idds``.

``make .venv-idds/.installed`` (a prerequisite of ``make test``) installs PyPI's
idds-client, idds-common, idds-workflow and idds-doma 2.6.21 in a venv of their own; each
test writes a short client script, runs it there as a subprocess pointed at the server's
``/idds`` (IDDS_HOST, an OIDC-type token: an Orchid token), and reads the JSON it prints
last.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("ORCHID_IDDS_VENV", ROOT / ".venv-idds"))
PYTHON = VENV / "bin" / "python"

# what every script starts with: the client, set up from the environment as users do
PRELUDE = """
import json, sys, time
from idds.client.clientmanager import ClientManager
from idds.common.utils import json_dumps
cm = ClientManager()

def out(value):
    print("RESULT " + json_dumps(value))
"""


def available() -> bool:
    return PYTHON.exists()


# skipped without the venv, except in CI, where run() then fails saying how to make it
needs_client = pytest.mark.skipif(
    not available() and not os.environ.get("CI"),
    reason="no .venv-idds: run `make .venv-idds/.installed`",
)


def run(url: str, token: str, script: str, home: Path, timeout: float = 120) -> Any:
    """Run ``script`` with the iDDS client against the Orchid at ``url``; what it passed
    to ``out()`` last (decoded as plain JSON: iDDS objects stay dicts here)."""
    if not available():
        pytest.fail(f"the iDDS client venv is missing ({VENV}): `make .venv-idds/.installed`")
    home.mkdir(parents=True, exist_ok=True)
    path = home / "script.py"
    path.write_text(PRELUDE + textwrap.dedent(script))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "IDDS_HOST": f"{url}/idds",
        "IDDS_AUTH_TYPE": "oidc",
        "IDDS_OIDC_TOKEN": token,
        "IDDS_VO": "orchid",
        "IDDS_LOCAL_CONFIG_ROOT": str(home / ".idds"),
        "IDDS_REQUEST_CACHE": str(home / "cache"),
    }
    done = subprocess.run(
        [str(PYTHON), str(path)],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise AssertionError(
            f"the client script failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return json.loads(lines[-1].removeprefix("RESULT "))
