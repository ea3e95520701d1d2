"""What a PanDA job runs: ``python3 -m orchid.executors.pandajob --cache URL KEY.SANDBOX``.

The PanDA executor puts the command lines of a batch of attempts into one *sandbox*, a
gzipped JSON file ``{key: {"argv": [...], "env": {...}, "workdir": ...}}`` uploaded to the
PanDA cache; each attempt is a pseudo-input file of its work's task named
``<key>.<sandbox>``, which PanDA puts on the job's command line. This module fetches the
sandbox (``GET <cache>/cache/<sandbox>``, once per node and sandbox), sets the job's
variables, runs the command and exits with its status. The job's result is the JSON file
``orchid-result.json`` in the job's working directory, which the pilot reports as the
job's metadata: what the command wrote to ``$ORCHID_RESULT_FILE``, else its last stdout
line if that is JSON (the rule of every executor).

Only the standard library is imported, so that a job starts fast on any node.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from orchid import jobvars

RESULT_NAME = "orchid-result.json"
EXIT_BAD_INPUT = 2


def sandbox_name(lfn: str) -> tuple[str, str]:
    """``<key>.<sandbox>`` → (key, sandbox)."""
    key, sep, sandbox = lfn.partition(".")
    if not sep or not key or not sandbox:
        raise ValueError(f"not an Orchid pseudo-input name: {lfn!r}")
    return key, sandbox


def fetch(cache: str, sandbox: str) -> dict[str, Any]:
    folder = Path(jobvars.find(jobvars.PANDA_CACHE) or tempfile.gettempdir()) / "orchid-panda"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / sandbox
    if not path.exists():
        url = cache.rstrip("/") + "/cache/" + sandbox
        with urllib.request.urlopen(url, timeout=120) as response:
            data = response.read()
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    doc: dict[str, Any] = json.loads(gzip.decompress(path.read_bytes()))
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orchid.executors.pandajob")
    parser.add_argument("--cache", required=True, help="the PanDA cache server's base URL")
    parser.add_argument("lfn", help="the pseudo-input file name: <key>.<sandbox>")
    ns = parser.parse_args(argv)
    try:
        key, sandbox = sandbox_name(ns.lfn)
        entry = fetch(ns.cache, sandbox)[key]
    except (ValueError, KeyError, OSError) as exc:
        print(f"orchid: cannot find the command of {ns.lfn}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    env = dict(os.environ)
    env.update(entry["env"])
    env[jobvars.RESULT_FILE] = str(Path.cwd() / RESULT_NAME)
    workdir = entry.get("workdir")
    cwd = workdir if workdir and os.path.isdir(workdir) else None
    result = Path(env[jobvars.RESULT_FILE])
    result.unlink(missing_ok=True)
    try:
        process = subprocess.Popen(entry["argv"], env=env, cwd=cwd, stdout=subprocess.PIPE)
    except OSError as exc:
        print(f"orchid: cannot start {entry['argv'][0]}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    last = b""
    for line in process.stdout or ():  # passed through to the pilot's log, last line kept
        sys.stdout.buffer.write(line)
        if line.strip():
            last = line.strip()[: 1024 * 1024]
    sys.stdout.flush()
    code = process.wait()
    if code == 0 and not result.exists() and last:
        try:
            json.loads(last)
            result.write_bytes(last)
        except ValueError:
            pass
    return code


if __name__ == "__main__":
    sys.exit(main())
