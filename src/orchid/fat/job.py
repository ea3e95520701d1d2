"""``orchid-job``: the command every Function-as-a-Task job runs, on any executor.

Command line (a work's ``command``; ``{call}`` is the job's ``call`` argument)::

    orchid-job [--workflow] --source SHA256|- --function REF --call ENVELOPE

- ``--source``: the sha256 of the zipped source tree in Orchid's cache ("-": none). It is
  fetched once per node and unpacked under ``$ORCHID_FAT_CACHE/<sha256>`` (default: the
  user cache folder, ``orchid/fat``), then put first on ``sys.path``.
- ``--function``: ``module:qualname`` to import, or the function by value:
  ``pickle:<base64>`` or ``cache:<sha256>`` (cloudpickle bytes).
- ``--call``: the arguments, a JSON envelope ``{"json": {"args": [...], "kwargs": {...}}}``,
  ``{"pickle": "<base64>"}`` or ``{"cache": "<sha256>"}`` (see :mod:`orchid.fat.codec`).
- ``--workflow``: the function is a server-side workflow function: its task calls add
  works to the job's own workflow (``ORCHID_WORKFLOW_ID``).

Environment:

- ``ORCHID_URL`` and ``ORCHID_TOKEN`` (a job token, see :mod:`orchid.core.jobtoken`): the
  server, for the cache and for reports; else ``ORCHID_HOME`` (the cache is
  ``$ORCHID_HOME/cache``) and ``ORCHID_DB_URL`` (embedded engine);
- ``ORCHID_WORKFLOW_ID``, ``ORCHID_JOB_ID``, ``ORCHID_WORK``, ``ORCHID_JOB_NAME``,
  ``ORCHID_ATTEMPT``: which job this is (reports name it);
- ``ORCHID_RESULT_FILE``: where the result envelope (JSON) goes; without it, it is printed
  as the last line of stdout.

Results: with a server, a message of kind ``fat.report`` is posted to the workflow with
the job, ``ok``, the result envelope or the error (type, message, traceback) and metrics
(wall and CPU seconds, peak memory); the result envelope also goes to the result file.
A traceback is printed on stderr between two marker lines.

Exit status: 0 success; 1 the function raised; 2 bad arguments, or the code or function
cannot be fetched or imported; 3 the result cannot be serialised.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from orchid import jobvars

EXIT_RAISED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_SERIALISABLE = 3


class JobError(Exception):
    """The job cannot run (exit status 2); the message says why."""


# --- talking to Orchid: a few stdlib HTTP calls, so that every job starts fast -------------


def _api() -> tuple[str, str] | None:
    url = jobvars.get(jobvars.URL).strip().rstrip("/")
    if not url:
        return None
    if not url.endswith("/api/v1"):
        url += "/api/v1"
    return url, jobvars.get(jobvars.TOKEN)


def _request(method: str, path: str, data: bytes | None = None, kind: str = "") -> bytes:
    import urllib.request

    api = _api()
    if api is None:
        raise JobError("no ORCHID_URL")
    url, token = api
    request = urllib.request.Request(url + path, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if kind:
        request.add_header("Content-Type", kind)
    last: Exception | None = None
    for attempt in range(4):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                body: bytes = response.read()
                return body
        except OSError as exc:  # URLError, HTTPError, timeouts
            code = getattr(exc, "code", None)
            if code is not None and 400 <= code < 500:
                raise JobError(f"{method} {path}: HTTP {code}: {exc}") from None
            last = exc
            time.sleep(0.2 * 2**attempt)
    raise JobError(f"{method} {path} failed: {last}")


def get_blob(sha256: str) -> bytes:
    """Bytes from the cache, checked against their sha256."""
    import hashlib

    if _api() is not None:
        data = _request("GET", f"/cache/{sha256}")
    else:
        home = jobvars.get(jobvars.HOME)
        if not home:
            raise JobError("neither ORCHID_URL nor ORCHID_HOME says where the cache is")
        path = os.path.join(home, "cache", sha256[:2], sha256[2:])
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise JobError(f"cached object {sha256} not found in {home}: {exc}") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise JobError(f"cached object {sha256} arrived damaged (its sha256 differs)")
    return data


def put_blob(data: bytes) -> str:
    """Store bytes in the cache (big results); their sha256."""
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    if _api() is not None:
        _request("PUT", f"/cache/{sha}", data, "application/octet-stream")
        return sha
    from orchid.backend.choose import from_env

    backend = from_env(in_job=True)
    try:
        return backend.put_blob(data)
    finally:
        backend.stop()


def _report(body: dict[str, Any]) -> None:
    workflow = jobvars.get(jobvars.WORKFLOW_ID)
    if _api() is None or not workflow:
        return
    data = json.dumps({"kind": "fat.report", "body": body}, allow_nan=False).encode()
    try:
        _request("POST", f"/workflows/{workflow}/messages", data, "application/json")
    except JobError as exc:  # the executor still learns the outcome from the exit status
        print(f"orchid-job: could not report to the server: {exc}", file=sys.stderr)


# --- code ------------------------------------------------------------------------------


def node_cache() -> str:
    folder = jobvars.get(jobvars.FAT_CACHE)
    if not folder:
        from platformdirs import user_cache_dir

        folder = os.path.join(user_cache_dir("orchid", appauthor=False), "fat")
    return folder


def unpack_source(sha256: str) -> str:
    """The folder of the unpacked source tree, fetched and unpacked once per node."""
    import re

    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise JobError(f"--source takes a sha256 (64 hex characters) or '-'; got {sha256!r}")
    target = os.path.join(node_cache(), sha256)
    if os.path.isdir(target):
        return target
    import io
    import shutil
    import tempfile
    import zipfile

    os.makedirs(node_cache(), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=node_cache(), prefix=f".{sha256[:12]}-")
    try:
        with zipfile.ZipFile(io.BytesIO(get_blob(sha256))) as zf:
            for name in zf.namelist():  # a zip is ours, but never write outside the folder
                if name.startswith("/") or ".." in name.split("/"):
                    raise JobError(f"the source zip holds an unsafe path {name!r}")
            zf.extractall(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another job of this node unpacked it first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_function(ref: str) -> Any:
    """The function ``--function`` names (the plain function of a task or workflow)."""
    from orchid.fat import codec

    if ref.startswith("pickle:"):
        fn = codec.decode({"pickle": ref.removeprefix("pickle:")})
    elif ref.startswith("cache:"):
        fn = codec.decode({"cache": ref.removeprefix("cache:")}, get_blob)
    else:
        import importlib

        module_name, sep, qualname = ref.partition(":")
        if not sep or not module_name or not qualname:
            raise JobError(
                f"--function takes module:qualname, pickle:... or cache:...; got {ref!r}"
            )
        try:
            fn = importlib.import_module(module_name)
        except ImportError as exc:
            raise JobError(f"cannot import module {module_name!r}: {exc}") from exc
        for part in qualname.split("."):
            try:
                fn = getattr(fn, part)
            except AttributeError:
                raise JobError(f"module {module_name!r} has no {qualname!r}") from None
    fn = getattr(fn, "fn", fn)  # a Task or Workflow wrapper: its function
    if not callable(fn):
        raise JobError(f"{ref[:80]!r} is not a function")
    return fn


# --- the job ---------------------------------------------------------------------------


def _metrics(started: float) -> dict[str, float]:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall_s": round(time.monotonic() - started, 6),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 6),
        "max_rss_kb": float(ru.ru_maxrss),
    }


def _write_result(envelope: dict[str, Any]) -> None:
    text = json.dumps(envelope, allow_nan=False)
    path = jobvars.find(jobvars.RESULT_FILE)
    if not path:
        sys.stdout.write("\n" + text + "\n")
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser(prog="orchid-job", description="Run one task call.")
    parser.add_argument("--workflow", action="store_true")
    parser.add_argument("--source", required=True)
    parser.add_argument("--function", required=True)
    parser.add_argument("--call", required=True)
    args = parser.parse_args(argv)
    ident = {
        "work": jobvars.get(jobvars.WORK),
        "job": jobvars.get(jobvars.JOB_NAME),
        "job_id": int(jobvars.find(jobvars.JOB_ID) or 0),
        "attempt": int(jobvars.find(jobvars.ATTEMPT) or 0),
    }
    from orchid.fat import codec

    try:
        if args.source != "-":
            sys.path.insert(0, unpack_source(args.source))
        fn = load_function(args.function)
        call = codec.decode(json.loads(args.call), get_blob)
        if not isinstance(call, dict):
            raise JobError("--call holds no {args, kwargs}")
    except (JobError, ValueError) as exc:
        print(f"orchid-job: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if args.workflow:
            from orchid.fat.launch import run_in_job

            workflow_id = int(jobvars.find(jobvars.WORKFLOW_ID) or 0)
            value = run_in_job(fn, call, workflow_id, getattr(fn, "__name__", "workflow"))
        else:
            value = fn(*call.get("args", []), **call.get("kwargs", {}))
    except Exception as exc:
        import traceback

        from orchid.backend.base import TB_BEGIN, TB_END

        text = traceback.format_exc()
        sys.stderr.write(f"{TB_BEGIN}\n{text}{TB_END}\n")
        error = {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": text}
        _report({**ident, "ok": False, "error": error, "metrics": _metrics(started)})
        label = getattr(fn, "__qualname__", args.function[:80])
        print(f"orchid-job: {label} raised {type(exc).__name__}: {exc}"[:500], file=sys.stderr)
        return EXIT_RAISED
    try:
        envelope = codec.encode(value, "the return value", put_blob)
    except Exception as exc:  # SerializationError, or the cache refused it
        print(f"orchid-job: {exc}", file=sys.stderr)
        return EXIT_NOT_SERIALISABLE
    _write_result(envelope)
    _report({**ident, "ok": True, "result": envelope, "metrics": _metrics(started)})
    return 0


def console() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console()
