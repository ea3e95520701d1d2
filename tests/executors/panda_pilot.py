"""A stand-in PanDA pilot for the tests: the only part of PanDA that is not the real thing.

No real pilot runs on these machines (it wants CVMFS, a batch slot, a proxy). This one
does, through the real pilot API of the real server, what a pilot does with a job:

1. takes jobs of its queue (``pilot/acquire_jobs``);
2. per job, in a work folder of its own: reports ``starting``, fetches the job's
   ``transformation`` (``transPath``: an http(s) URL is downloaded, as a pilot does;
   a local path is copied), makes it executable and runs ``./<script> <jobPars>`` with
   bash, stdout and stderr to ``payload.stdout``/``payload.stderr``, with the variables
   a pilot sets (``PandaID``, ``PanDA_TaskID``, ``PanDA_AttemptNr``);
3. sends a heartbeat (``running``) every ``heartbeat`` s; when the server answers with
   the ``tobekilled`` command (``killJobs``/``killTask``), kills the payload and reports
   the job failed with pilot error 1144 (the server then marks it ``cancelled``); a
   payload that runs past the job's ``maxWalltime`` is killed and reported with pilot
   error 1213 ("reached maximum time");
4. reports the end through ``pilot/update_job``: ``finished`` or ``failed``, the
   payload's exit code (``trans_exit_code``, ``exe_error_code``), the last lines of its
   stderr as ``exe_error_diag`` (a real pilot's error analysis does the same), the output
   report of the log file, and as the job's metadata (``meta_data``) the payload's
   ``jobReport.json``, the job report a pilot uploads.

The adder's part (``holding`` → ``finished``/``failed``) is the server's own code,
run by the fixture (tests/executors/panda_files/daemons.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

KILLED_BY_PANDA = 1144
REACHED_MAX_TIME = 1213
JOB_REPORT = "jobReport.json"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class StandInPilot:
    """Pilots of one queue: up to ``slots`` jobs at a time, in ``workdir``."""

    api: str  # the server's /api/v1 base
    site: str
    workdir: Path
    prod_source_label: str = "test"
    slots: int = 8
    heartbeat: float = 1.0
    idle: float = 0.2  # seconds between acquire calls that found nothing
    ran: list[int] = field(default_factory=list)  # PandaIDs run, in order
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _busy: threading.Semaphore | None = None

    def __post_init__(self) -> None:
        self._client = httpx.Client(
            base_url=self.api.rstrip("/") + "/",
            timeout=60,
            headers={"Accept": "application/json"},
        )
        self._busy = threading.Semaphore(self.slots)
        self._lock = threading.Lock()
        # no process is forked while a script is open for writing: a child forked then
        # would hold it open, and running it would fail with "Text file busy"
        self._spawn = threading.Lock()

    def __enter__(self) -> StandInPilot:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        thread = threading.Thread(target=self._loop, name="stand-in-pilot", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=30)
        self._client.close()

    # --- the pilot API ------------------------------------------------------------------

    def _call(self, endpoint: str, **data: Any) -> dict[str, Any]:
        """POST to the pilot API; a connection error is tried again (as a pilot does)."""
        for attempt in range(5):
            try:
                response = self._client.post(endpoint, json=data)
                response.raise_for_status()
                answer: dict[str, Any] = response.json()
                return answer
            except httpx.TransportError:
                if attempt == 4:
                    raise
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _update(self, job: dict[str, Any], status: str, **data: Any) -> dict[str, Any]:
        return self._call(
            "pilot/update_job",
            job_id=int(job["PandaID"]),
            job_status=status,
            attempt_nr=int(job.get("attemptNr") or 0),  # else the server drops the report
            site_name=self.site,
            node="stand-in-pilot",
            **data,
        )

    def _loop(self) -> None:
        assert self._busy is not None
        while not self._stop.is_set():
            free = 0
            while self._busy.acquire(blocking=False):
                free += 1
            if not free:
                time.sleep(0.05)
                continue
            try:
                answer = self._call(
                    "pilot/acquire_jobs",
                    site_name=self.site,
                    prod_source_label=self.prod_source_label,
                    node="stand-in-pilot",
                    n_jobs=free,
                )
                jobs = (answer.get("data") or {}).get("jobs") or []
            except (httpx.HTTPError, ValueError):
                jobs = []
            jobs = [j for j in jobs if j.get("PandaID")]
            for _ in range(free - len(jobs)):
                self._busy.release()
            for job in jobs:
                thread = threading.Thread(target=self._run, args=(job,), daemon=True)
                thread.start()
                self._threads.append(thread)
            if not jobs:
                self._stop.wait(self.idle)

    # --- one job ------------------------------------------------------------------------

    def _run(self, job: dict[str, Any]) -> None:
        assert self._busy is not None
        try:
            self._payload(job)
        except Exception as exc:  # the pilot itself failed: PanDA hears it like that
            with contextlib.suppress(httpx.HTTPError):
                self._update(job, "failed", pilot_error_code=1008, pilot_error_diag=str(exc))
        finally:
            with self._lock:
                self.ran.append(int(job["PandaID"]))
            self._busy.release()

    def _fetch(self, transformation: str, folder: Path) -> Path:
        name = transformation.rstrip("/").rsplit("/", 1)[-1] or "payload"
        target = folder / name
        if transformation.startswith(("http://", "https://")):
            transport = httpx.HTTPTransport(retries=3)
            with httpx.Client(transport=transport, timeout=60, follow_redirects=True) as http:
                response = http.get(transformation)
            response.raise_for_status()
            with self._spawn:
                target.write_bytes(response.content)
        else:
            with self._spawn:
                shutil.copy(transformation, target)
        target.chmod(0o755)
        return target

    def _payload(self, job: dict[str, Any]) -> None:
        panda_id = int(job["PandaID"])
        folder = self.workdir / f"PanDA_Pilot-{panda_id}-{uuid.uuid4().hex[:6]}"
        folder.mkdir(parents=True)
        self._update(job, "starting")
        script = self._fetch(str(job["transformation"]), folder)
        env = dict(os.environ)
        env.update(
            PandaID=str(panda_id),
            PanDA_TaskID=str(job.get("taskID")),
            PanDA_AttemptNr=str(job.get("attemptNr")),
        )
        command = f"./{shlex.quote(script.name)} {job.get('jobPars') or ''}"
        start = _now()
        t0 = time.monotonic()
        with (
            open(folder / "payload.stdout", "wb") as out,
            open(folder / "payload.stderr", "wb") as err,
        ):
            self._spawn.acquire()
            try:
                process = subprocess.Popen(
                    ["bash", "-c", command],
                    cwd=folder,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            finally:
                self._spawn.release()
        self._update(job, "running", start_time=start)
        walltime = int(job.get("maxWalltime") or 0)
        killed: tuple[int, str] | None = None
        next_beat = time.monotonic() + self.heartbeat
        while process.poll() is None:
            time.sleep(0.02)
            if walltime and time.monotonic() - t0 > walltime:
                killed = (REACHED_MAX_TIME, f"job exceeded its maximum walltime of {walltime} s")
            elif time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.heartbeat
                answer = self._update(job, "running")
                if (answer.get("data") or {}).get("command") == "tobekilled":
                    killed = (KILLED_BY_PANDA, "killed by the PanDA server (tobekilled)")
            if killed:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        code = process.returncode
        ok = code == 0 and killed is None
        report = {
            lfn: {
                "guid": str(uuid.uuid4()),
                "fsize": 1,
                "adler32": "00000001",
                "surl": f"file://{folder}/{lfn}",
            }
            for lfn in str(job.get("outFiles") or "").split(",")
            if lfn and lfn != "NULL"
        }
        result: dict[str, Any] = {
            "job_output_report": json.dumps(report),
            "start_time": start,
            "end_time": _now(),
            "cpu_consumption_time": max(1, round(time.monotonic() - t0)),
            "trans_exit_code": code if killed is None else -1,
        }
        metadata = folder / JOB_REPORT
        if metadata.exists():
            result["meta_data"] = metadata.read_text(errors="replace")
        if killed is not None:
            result.update(pilot_error_code=killed[0], pilot_error_diag=killed[1])
        elif code != 0:
            tail = (folder / "payload.stderr").read_bytes()[-2000:].decode(errors="replace")
            lines = [line for line in tail.splitlines() if line.strip()][-5:]
            result.update(exe_error_code=code, exe_error_diag=" | ".join(lines)[-250:])
        self._update(job, "finished" if ok else "failed", **result)
