"""``orchid config show``: the effective settings, by section, with their sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_config_show_prints_values_and_sources_with_secrets_masked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text('[executors]\nprefetch = 7\n[ui]\nsecret = "s3cret"\n')
    env = {
        **os.environ,
        "ORCHID_HOME": str(home),
        "ORCHID_REUSE_WORKERS": "1",
        "ORCHID_OIDC_CLIENT_SECRET": "hush",
    }
    env.pop("ORCHID_SETTINGS", None)
    done = subprocess.run(
        [sys.executable, "-m", "orchid.cli.main", "config", "show", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = {(r["section"], r["key"]): r for r in map(json.loads, done.stdout.splitlines())}
    assert rows["executors", "prefetch"]["value"] == "7"
    assert rows["executors", "prefetch"]["source"] == str(home / "settings.toml")
    assert rows["executors", "reuse_workers"]["source"] == "$ORCHID_REUSE_WORKERS"
    assert rows["engine", "batch"] == {
        "section": "engine",
        "key": "batch",
        "value": "5000",
        "source": "default",
    }
    assert rows["ui", "oidc_client_secret"]["value"] == "********"
    assert "s3cret" not in done.stdout and "hush" not in done.stdout
