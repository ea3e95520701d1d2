#!/usr/bin/env python3
"""What a PanDA job runs: this file, as the ``transPath`` of every task Orchid makes.

The PanDA executor uploads this file to the PanDA cache under a name made of its content
hash (``orchid-pandajob-<sha>.py``) and names its cache URL as the task's ``transPath``:
a pilot downloads it and runs ``./orchid-pandajob-<sha>.py <jobPars>``, which here are
``--cache URL --prefix PREFIX <lfn>``. The job's pseudo-input file ``<lfn>``
(``j<job id>.<attempt>``) names its command: the executor uploaded it, when it released
that attempt, to the cache as ``<PREFIX>.<lfn>.json`` (``{"argv", "env", "workdir"}``).
This script fetches it (``GET <cache>/cache/<name>``), sets the job's variables, runs the
command and exits with its status.

The job's result (what the command wrote to ``$ORCHID_RESULT_FILE``, else its last
stdout line if that is JSON: the rule of every executor) goes to ``jobReport.json`` in
the work folder as ``{"orchid_result": ...}``: the job report a pilot uploads as the
job's metadata, which is where the executor reads it back.

Only the standard library of the node's ``python3`` is used: nothing is installed on
the worker; the command itself needs whatever it runs (a function payload: Orchid).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

RESULT_VAR = "ORCHID_RESULT_FILE"  # orchid.jobvars.RESULT_FILE (no Orchid import here)
RESULT_NAME = "orchid-result.json"
JOB_REPORT = "jobReport.json"  # what a pilot reports as the job's metadata
RESULT_KEY = "orchid_result"
EXIT_BAD_INPUT = 2  # the command could not be found: nothing ran


def fetch(cache: str, name: str, tries: int = 5) -> dict[str, Any]:
    url = cache.rstrip("/") + "/cache/" + name
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                doc: dict[str, Any] = json.loads(response.read())
                return doc
        except OSError:
            if attempt == tries - 1:
                raise
            time.sleep(2**attempt)
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orchid-pandajob")
    parser.add_argument("--cache", required=True, help="the PanDA cache's base URL")
    parser.add_argument("--prefix", required=True, help="the task's prefix of cache names")
    parser.add_argument("lfn", help="the pseudo-input file: j<job id>.<attempt>")
    ns = parser.parse_args(argv)
    lfn = ns.lfn.rsplit(":", 1)[-1]  # a scope, if PanDA ever gives one
    try:
        entry = fetch(ns.cache, f"{ns.prefix}.{lfn}.json")
    except (ValueError, OSError) as exc:
        print(f"orchid: cannot fetch the command of {lfn}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    env = dict(os.environ)
    env.update(entry.get("env") or {})
    result = Path.cwd() / RESULT_NAME
    env[RESULT_VAR] = str(result)
    result.unlink(missing_ok=True)
    workdir = entry.get("workdir")
    cwd = workdir if workdir and os.path.isdir(workdir) else None
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
    value: Any = None
    found = False
    if result.exists():
        try:
            value, found = json.loads(result.read_bytes()), True
        except ValueError as exc:
            print(f"orchid: the result file is not valid JSON: {exc}", file=sys.stderr)
            return code or 1
    elif code == 0 and last:
        with contextlib.suppress(ValueError):
            value, found = json.loads(last), True
    if found:
        report = Path.cwd() / JOB_REPORT
        tmp = Path(tempfile.mkstemp(dir=Path.cwd(), prefix=".report")[1])
        tmp.write_text(json.dumps({RESULT_KEY: value}))
        os.replace(tmp, report)
    return code


if __name__ == "__main__":
    sys.exit(main())
