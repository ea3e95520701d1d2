"""A job that swaps its logs (or their folder) for links to other files: the API serves
none of it (issue 15, item 9); plain logs are still served."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.api.conftest import Agents, Api

LOCAL = pytest.mark.parametrize("executor_name", ["local"])
SECRET = "TOP SECRET of the service\n"

# the job finds its own log files through /proc and replaces them with links to argv[1]
SWAP_FILES = (
    "import os, sys\n"
    "print('hello', flush=True)\n"
    "for fd in (1, 2):\n"
    "    p = os.readlink(f'/proc/self/fd/{fd}')\n"
    "    os.unlink(p)\n"
    "    os.symlink(sys.argv[1], p)\n"
)
# the job moves its log folder away and puts a link to a folder of its own in its place,
# holding a file named like its log
SWAP_FOLDER = (
    "import os, sys\n"
    "print('hello', flush=True)\n"
    "p = os.readlink('/proc/self/fd/1')\n"
    "folder, name = os.path.split(p)\n"
    "evil = sys.argv[1]\n"
    "os.makedirs(evil, exist_ok=True)\n"
    "open(os.path.join(evil, name), 'w').write(open(sys.argv[2]).read())\n"
    "os.rename(folder, folder + '.moved')\n"
    "os.symlink(evil, folder)\n"
)


def run_job(api: Api, command: list[str]) -> int:
    wf = api.submit("alice", {"name": "swap", "works": [{"name": "a", "command": command}]})
    api.wait_status(wf["id"])
    (job,) = api.client("alice").get(f"/workflows/{wf['id']}/jobs").json()["items"]
    return int(job["id"])


@LOCAL
def test_logs_swapped_for_links_are_not_served(api: Api, agents: Agents, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    c = api.client("alice")
    plain = run_job(api, [sys.executable, "-c", "print('plain')"])
    assert c.get(f"/jobs/{plain}/logs").text == "plain\n"

    job = run_job(api, [sys.executable, "-c", SWAP_FILES, str(secret)])
    for stream in ("stdout", "stderr"):
        r = c.get(f"/jobs/{job}/logs", params={"stream": stream})
        assert r.status_code == 404, r.text
        assert "TOP SECRET" not in r.text
        assert f"the {stream} of job {job} is not available" in r.json()["error"]
        assert "symbolic link" in r.json()["error"]
        r = c.get(f"/jobs/{job}/logs", params={"stream": stream}, headers={"Range": "bytes=0-5"})
        assert r.status_code == 404 and "TOP SECRET" not in r.text

    folder = run_job(api, [sys.executable, "-c", SWAP_FOLDER, str(tmp_path / "evil"), str(secret)])
    r = c.get(f"/jobs/{folder}/logs")
    assert r.status_code == 404, r.text
    assert "TOP SECRET" not in r.text and "symbolic link" in r.json()["error"]
    assert api.server_errors == []
