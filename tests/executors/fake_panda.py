"""A FAKE PanDA server, for the few fast edge cases of test_panda_fake.py only.

The panda executor is tested against a real panda-server and JEDI (test_panda_real.py);
this fake predates it and models an older executor (incremental re-submission, which a
real server does not do). Kept for the cases the real server in the tests cannot show.

Exactly the REST endpoints the panda-client calls of Orchid use.

Modelled on PanDA's documented REST API (``/api/v1``, JSON envelopes
``{"success", "message", "data"}``, OIDC bearer tokens with an ``Origin`` VO header) as
panda-client 2.x calls it:

===============================================  ==========================================
panda-client call                                endpoint
===============================================  ==========================================
``insertTaskParams(params)``                     ``POST /api/v1/task/submit``
``get_tasks_detailed_info_since(filters=...)``   ``GET  /api/v1/task/get_tasks_detailed_info_since``
``getPandaIDsWithTaskID(task)``                  ``GET  /api/v1/task/get_job_ids``
``getJobStatus(ids)``                            ``POST /api/v1/job/get_description``
``getTaskStatus(task)``                          ``GET  /api/v1/task/get_status``
``killJobs(ids)``                                ``POST /api/v1/job/kill``
``killTask(task)``                               ``POST /api/v1/task/kill``
``putFile(path, useCacheSrv=True)``              ``POST /api/v1/file_server/upload_cache_file``
(the job, fetching its sandbox)                  ``GET  /cache/<name>``
===============================================  ==========================================

Behind them: a task per ``taskName`` (submitting it again with new ``pfnList`` files adds
jobs for them: incremental execution; files it has are not added twice), one job per
pseudo-input file, run by a "pilot" thread as a local process (the job parameters with
``${IN/L}`` replaced by the file name), ``maxWalltime`` enforced, the job's
``orchid-result.json`` reported as its ``metadata``. With ``publish`` set, every job
status change is also sent as a STOMP message ``{"msg_type": "job_status", ...}`` like
the ones PanDA sends to iDDS.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import Response

TOKEN = "fake-oidc-token"
VO = "testvo"


def _when(t: float) -> dict[str, str]:
    return {"__datetime__": datetime.fromtimestamp(t, UTC).replace(tzinfo=None).isoformat()}


class FakePanda:
    def __init__(
        self, folder: Path, publish: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.folder = folder
        self.publish = publish
        self.lock = threading.Lock()
        self.tasks: dict[int, dict[str, Any]] = {}
        self.jobs: dict[int, dict[str, Any]] = {}
        self.cache: dict[str, bytes] = {}
        self.calls: list[str] = []
        self._next_task, self._next_job = 30_000, 5_000_000_000
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()
        self.app = self._routes()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/server/panda"
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> FakePanda:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake PanDA server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        with self.lock:
            procs = list(self._procs.values())
        for p in procs:
            _kill(p)
        self._server.should_exit = True
        self._thread.join(timeout=30)

    # --- the REST API -----------------------------------------------------------------

    def _routes(self) -> FastAPI:
        app = FastAPI()
        fake = self

        def auth(authorization: str | None, origin: str | None) -> None:
            if authorization != f"Bearer {TOKEN}" or origin != VO:
                raise HTTPException(403, "invalid token or VO")

        def ok(data: Any, message: str = "") -> dict[str, Any]:
            return {"success": True, "message": message, "data": data}

        @app.post("/api/v1/task/submit")
        async def submit(
            request: Request,
            authorization: str | None = Header(None),
            origin: str | None = Header(None),
        ) -> dict[str, Any]:
            auth(authorization, origin)
            fake.calls.append("task/submit")
            params = (await request.json())["task_parameters"]
            return fake.submit_task(params)

        @app.get("/api/v1/task/get_tasks_detailed_info_since")
        def tasks_since(
            filters: str = "{}",
            authorization: str | None = Header(None),
            origin: str | None = Header(None),
        ) -> dict[str, Any]:
            auth(authorization, origin)
            fake.calls.append("task/get_tasks_detailed_info_since")
            wanted = json.loads(filters)
            with fake.lock:
                found = [
                    {
                        "jediTaskID": t["id"],
                        "taskName": t["params"]["taskName"],
                        "status": t["status"],
                    }
                    for t in fake.tasks.values()
                    if all(str(t["params"].get(k)) == str(v) for k, v in wanted.items())
                ]
            return ok(found)

        @app.get("/api/v1/task/get_job_ids")
        def job_ids(
            task_id: int,
            authorization: str | None = Header(None),
            origin: str | None = Header(None),
        ) -> dict[str, Any]:
            auth(authorization, origin)
            fake.calls.append("task/get_job_ids")
            with fake.lock:
                return ok([j["PandaID"] for j in fake.jobs.values() if j["jediTaskID"] == task_id])

        @app.get("/api/v1/task/get_status")
        def task_status(
            task_id: int,
            authorization: str | None = Header(None),
            origin: str | None = Header(None),
        ) -> dict[str, Any]:
            auth(authorization, origin)
            fake.calls.append("task/get_status")
            with fake.lock:
                task = fake.tasks.get(task_id)
            if task is None:
                return {"success": False, "message": "task not found", "data": None}
            return ok(task["status"])

        @app.post("/api/v1/job/get_description")
        async def describe(
            request: Request,
            authorization: str | None = Header(None),
            origin: str | None = Header(None),
        ) -> dict[str, Any]:
            auth(authorization, origin)
            fake.calls.append("job/get_description")
            ids = (await request.json())["job_ids"]
            with fake.lock:
                return ok([_public(fake.jobs[i]) for i in ids if i in fake.jobs])

        @app.post("/api/v1/job/kill")
        async def kill_jobs(
            request: Request,
            authorization: str | None = Header(None),
            origin: str | None = Header(None),
        ) -> dict[str, Any]:
            auth(authorization, origin)
            fake.calls.append("job/kill")
            ids = (await request.json())["job_ids"]
            return ok([fake.kill(i) for i in ids])

        @app.post("/api/v1/task/kill")
        async def kill_task(
            request: Request,
            authorization: str | None = Header(None),
            origin: str | None = Header(None),
        ) -> dict[str, Any]:
            auth(authorization, origin)
            fake.calls.append("task/kill")
            task_id = (await request.json())["task_id"]
            with fake.lock:
                task = fake.tasks.get(task_id)
                ids = [j["PandaID"] for j in fake.jobs.values() if j["jediTaskID"] == task_id]
            if task is None:
                return ok(2, "task not found")
            for i in ids:
                fake.kill(i)
            with fake.lock:
                task["status"] = "aborted"
            return ok(0, "command is registered")

        @app.post("/api/v1/file_server/upload_cache_file")
        async def upload(
            request: Request,
            authorization: str | None = Header(None),
            origin: str | None = Header(None),
        ) -> dict[str, Any]:
            auth(authorization, origin)
            fake.calls.append("file_server/upload_cache_file")
            head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
            message = BytesParser(policy=default).parsebytes(head + await request.body())
            for part in message.iter_parts():
                if part.get_param("name", header="content-disposition") == "file":
                    name = os.path.basename(part.get_filename() or "")
                    fake.cache[name] = part.get_payload(decode=True)
            return ok(None, "uploaded")

        @app.get("/cache/{name}")
        def cache(name: str) -> Response:
            data = fake.cache.get(name)
            if data is None:
                raise HTTPException(404, "no such file")
            return Response(data, media_type="application/octet-stream")

        return app

    # --- JEDI and the pilots ------------------------------------------------------------

    def submit_task(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            task = next(
                (t for t in self.tasks.values() if t["params"]["taskName"] == params["taskName"]),
                None,
            )
            incremental = task is not None
            if task is None:
                task = {"id": self._next_task, "params": params, "status": "running", "files": []}
                self._next_task += 1
                self.tasks[task["id"]] = task
            elif task["status"] == "aborted":
                return {"success": False, "message": "task is aborted", "data": 4}
            new = [f for f in params.get("pfnList", []) if f not in task["files"]]
            task["files"] += new
            created = []
            for lfn in new:
                job = {
                    "PandaID": self._next_job,
                    "jediTaskID": task["id"],
                    "jobStatus": "activated",
                    "transExitCode": None,
                    "pilotErrorDiag": None,
                    "exeErrorDiag": None,
                    "taskBufferErrorDiag": None,
                    "supErrorDiag": None,
                    "metadata": None,
                    "coreCount": params.get("coreCount"),
                    "minRamCount": params.get("ramCount"),
                    "maxWalltime": params.get("maxWalltime"),
                    "computingSite": params.get("site"),
                    "attemptNr": 1,
                    "maxAttempt": params.get("maxAttempt"),
                    "cpuConsumptionTime": 0,
                    "maxRSS": None,
                    "Files": [{"lfn": lfn, "type": "pseudo_input", "status": "ready"}],
                    "command": self._command(params, lfn),
                }
                self._next_job += 1
                self.jobs[job["PandaID"]] = job
                created.append(job["PandaID"])
        for panda_id in created:
            threading.Thread(target=self._pilot, args=(panda_id,), daemon=True).start()
        how = f" (incremental execution: {len(new)} new files)" if incremental else ""
        return {
            "success": True,
            "message": f"succeeded. jediTaskID={task['id']}{how}",
            "data": task["id"],
        }

    @staticmethod
    def _command(params: dict[str, Any], lfn: str) -> list[str]:
        parts = []
        for p in params["jobParameters"]:
            parts.append(
                p["value"].replace("${IN/L}", lfn) if p["type"] == "template" else p["value"]
            )
        return shlex.split(" ".join(parts))

    def _set(self, panda_id: int, **fields: Any) -> None:
        with self.lock:
            job = self.jobs[panda_id]
            changed = "jobStatus" in fields and fields["jobStatus"] != job["jobStatus"]
            job.update(fields)
            message = {
                "msg_type": "job_status",
                "taskid": job["jediTaskID"],
                "jobid": panda_id,
                "status": job["jobStatus"],
                "timestamp": time.time(),
            }
            self._task_status(job["jediTaskID"])
        if changed and self.publish is not None:
            self.publish(message)

    def _task_status(self, task_id: int) -> None:
        task = self.tasks[task_id]
        if task["status"] == "aborted":
            return
        states = [j["jobStatus"] for j in self.jobs.values() if j["jediTaskID"] == task_id]
        if all(s in ("finished", "failed", "cancelled") for s in states):
            task["status"] = "done" if all(s == "finished" for s in states) else "finished"
        else:
            task["status"] = "running"

    def _pilot(self, panda_id: int) -> None:
        with self.lock:
            job = dict(self.jobs[panda_id])
        if job["jobStatus"] != "activated":
            return
        work = Path(tempfile.mkdtemp(prefix=f"pilot-{panda_id}-", dir=self.folder))
        out, err = (work / "payload.stdout").open("wb"), (work / "payload.stderr").open("wb")
        started = time.time()
        try:
            process = subprocess.Popen(
                job["command"],
                cwd=work,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            self._set(panda_id, jobStatus="failed", pilotErrorDiag=f"cannot start payload: {exc}")
            return
        finally:
            out.close()
            err.close()
        with self.lock:
            self._procs[panda_id] = process
            killed = self.jobs[panda_id]["jobStatus"] == "cancelled"
        if killed:
            _kill(process)
        else:
            self._set(panda_id, jobStatus="running", startTime=_when(started))
        limit = job["maxWalltime"]
        timed_out = False
        while process.poll() is None:
            if limit and time.time() - started > limit:
                timed_out = True
                _kill(process)
            if self._stopping.wait(0.02):
                _kill(process)
        code = process.wait()
        with self.lock:
            self._procs.pop(panda_id, None)
            cancelled = self.jobs[panda_id]["jobStatus"] == "cancelled"
        ended = {"endTime": _when(time.time()), "transExitCode": code, "cpuConsumptionTime": 0}
        result_file = work / "orchid-result.json"
        metadata = (
            result_file.read_text() if result_file.exists() and result_file.stat().st_size else None
        )
        stderr = (work / "payload.stderr").read_text(errors="replace").strip().splitlines()
        shutil.rmtree(work, ignore_errors=True)
        if cancelled:
            self._set(panda_id, taskBufferErrorDiag="killed by the user", **ended)
        elif timed_out:
            self._set(
                panda_id,
                jobStatus="failed",
                pilotErrorDiag=f"Job killed: exceeded the maxWalltime of {limit} s",
                **ended,
            )
        elif code == 0:
            self._set(panda_id, jobStatus="finished", metadata=metadata, **ended)
        else:
            self._set(
                panda_id,
                jobStatus="failed",
                exeErrorDiag=stderr[-1] if stderr else f"payload exit code {code}",
                **ended,
            )

    def kill(self, panda_id: int) -> bool:
        with self.lock:
            job = self.jobs.get(panda_id)
            if job is None or job["jobStatus"] in ("finished", "failed", "cancelled"):
                return False
            process = self._procs.get(panda_id)
        self._set(panda_id, jobStatus="cancelled")
        if process is not None:
            _kill(process)
        return True


def _public(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k != "command"}


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
