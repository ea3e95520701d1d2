"""A fake of exactly the ``htcondor2`` binding calls Orchid's HTCondor executor makes.

Shaped like the real bindings (HTCondor 25: ``htcondor2``): ``Schedd()``,
``Schedd(location_ad)``, ``Collector(pool).locate(DaemonType.Schedd, name)``,
``Submit(dict)``, ``schedd.submit(description, itemdata=iter(dicts))`` returning a
``SubmitResult`` (``cluster()``, ``first_proc()``), ``schedd.query(constraint,
projection)``, ``schedd.history(constraint, projection, match=N)`` and
``schedd.act(JobAction.Remove, ["cluster.proc", ...], reason=...)``; job ads as mappings.

Behind them, a tiny schedd: jobs run as local processes in a scratch folder of their own,
with the environment of the ``environment`` command only (as HTCondor does without
``getenv``); stdout, stderr and ``transfer_output_files`` are copied back on exit
(``transfer_output_remaps`` applied; a listed file that is missing holds the job, as in
HTCondor); ``allowed_job_duration`` holds a job that runs too long (HoldReasonCode 46);
ended and removed jobs leave the queue for the history. Submit-language values are
expanded like HTCondor does (``$(name)`` macros, ``$(DOLLAR)``), and ``arguments`` and
``environment`` are parsed in HTCondor's new (double-quoted) syntax.

Constraints: only the forms the executor writes are understood (``OrchidNamespace ==
"x"``, ``member(OrchidKey, {...})``, ``member(ClusterId, {...})``, joined by ``&&``).
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


class JobAction(enum.IntEnum):
    Hold = 0
    Release = 1
    Remove = 2


class DaemonType(enum.IntEnum):
    Schedd = 4


class Submit(dict[str, str]):
    def __init__(self, description: Mapping[str, str]) -> None:
        super().__init__(description)


class SubmitResult:
    def __init__(self, cluster: int, first: int, n: int) -> None:
        self._cluster, self._first, self._n = cluster, first, n

    def cluster(self) -> int:
        return self._cluster

    def first_proc(self) -> int:
        return self._first

    def num_procs(self) -> int:
        return self._n


def expand(value: str, macros: Mapping[str, str], depth: int = 0) -> str:
    if depth > 20:
        raise ValueError("macro loop")

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "DOLLAR":
            return "\0DOLLAR\0"
        return expand(macros.get(name, ""), macros, depth + 1)

    out = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, value)
    return out if depth else out.replace("\0DOLLAR\0", "$")


def parse_new_syntax(text: str) -> list[str]:
    """Split HTCondor's new argument/environment syntax: "a 'b c' ''''" → [a, b c, ']."""
    if not (len(text) >= 2 and text[0] == text[-1] == '"'):
        raise ValueError(f"not new syntax: {text!r}")
    body = text[1:-1].replace('""', '"')
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        while i < n and body[i].isspace():
            i += 1
        if i >= n:
            break
        token, quoted = "", False
        while i < n and not body[i].isspace():
            if body[i] == "'":
                quoted = True
                i += 1
                while i < n:
                    if body[i] == "'" and i + 1 < n and body[i + 1] == "'":
                        token += "'"
                        i += 2
                    elif body[i] == "'":
                        i += 1
                        break
                    else:
                        token += body[i]
                        i += 1
            else:
                token += body[i]
                i += 1
        if token or quoted:
            out.append(token)
    return out


class FakeSchedd:
    """The state of one schedd, shared by every ``Schedd`` handle of a FakeHTCondor."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: dict[str, dict[str, Any]] = {}
        self.done: list[dict[str, Any]] = []  # the history
        self.next_cluster = 100
        self.submitted: list[dict[str, Any]] = []  # every job ad, for tests to look at
        self.calls: list[str] = []
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()

    def shutdown(self) -> None:
        self._stop.set()
        with self.lock:
            procs = list(self._procs.values())
        for p in procs:
            _kill(p)

    # --- the binding calls ----------------------------------------------------------

    def submit(self, description: Submit, itemdata: Iterator[Mapping[str, str]]) -> SubmitResult:
        self.calls.append("submit")
        items = list(itemdata)
        with self.lock:
            cluster = self.next_cluster
            self.next_cluster += 1
        for proc_id, item in enumerate(items):
            macros = {**{k: v for k, v in description.items() if not k.startswith("+")}, **item}
            sub = {k: expand(v, macros) for k, v in description.items()}
            ad: dict[str, Any] = {
                "ClusterId": cluster,
                "ProcId": proc_id,
                "JobStatus": 1,
                "Cmd": sub["executable"],
                "Args": sub["arguments"],
                "Environment": sub["environment"],
                "Iwd": sub["initialdir"],
                "Out": sub["output"],
                "Err": sub["error"],
                "RequestCpus": int(sub["request_cpus"]),
                "RequestMemory": int(sub["request_memory"]),
                "RequestGpus": int(sub["request_gpus"]),
                "TransferOutput": sub.get("transfer_output_files", ""),
                "TransferOutputRemaps": sub.get("transfer_output_remaps", "").strip('"'),
            }
            duration = sub.get("allowed_job_duration", "undefined")
            if duration != "undefined":
                ad["AllowedJobDuration"] = int(duration)
            for key, value in sub.items():
                if key.startswith("+"):
                    ad[key[1:]] = json.loads(value) if value != "undefined" else None
            job_id = f"{cluster}.{proc_id}"
            with self.lock:
                self.queue[job_id] = ad
                self.submitted.append(dict(ad))
            threading.Thread(target=self._run, args=(job_id,), daemon=True).start()
        return SubmitResult(cluster, 0, len(items))

    def query(self, constraint: str, projection: list[str]) -> list[dict[str, Any]]:
        self.calls.append("query")
        with self.lock:
            return [
                _project(ad, projection) for ad in self.queue.values() if _match(ad, constraint)
            ]

    def history(
        self, constraint: str, projection: list[str], match: int = -1
    ) -> list[dict[str, Any]]:
        self.calls.append("history")
        with self.lock:
            found = [
                _project(ad, projection) for ad in reversed(self.done) if _match(ad, constraint)
            ]
        return found if match < 0 else found[:match]

    def act(
        self, action: JobAction, job_spec: list[str], reason: str | None = None
    ) -> dict[str, Any]:
        self.calls.append(f"act:{action.name}")
        if action != JobAction.Remove:
            raise NotImplementedError(action)
        for job_id in job_spec:
            with self.lock:
                ad = self.queue.get(job_id)
                if ad is None:
                    continue
                ad["RemoveReason"] = reason
                process = self._procs.get(job_id)
                if process is None:  # not started, or held: leaves the queue now
                    ad["JobStatus"] = 3
                    self.done.append(self.queue.pop(job_id))
                    continue
                ad["JobStatus"] = 3
            _kill(process)
        return {"TotalSuccess": len(job_spec)}

    # --- running a job ----------------------------------------------------------------

    def _run(self, job_id: str) -> None:
        with self.lock:
            ad = self.queue.get(job_id)
            if ad is None or ad["JobStatus"] != 1:
                return
            ad = dict(ad)
        scratch = Path(tempfile.mkdtemp(prefix="fake-condor-"))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "_CONDOR_SCRATCH_DIR": str(scratch)}
        for pair in parse_new_syntax(ad["Environment"]):
            name, _, value = pair.partition("=")
            env[name] = value
        argv = [ad["Cmd"], *parse_new_syntax(ad["Args"])]
        out, err = scratch / "_condor_stdout", scratch / "_condor_stderr"
        with out.open("wb") as o, err.open("wb") as e:
            process = subprocess.Popen(
                argv,
                cwd=scratch,
                env=env,
                stdout=o,
                stderr=e,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        started = time.time()
        with self.lock:
            self._procs[job_id] = process
            live = self.queue.get(job_id)
            if live is None or live["JobStatus"] != 1:
                removed = True
            else:
                removed = False
                live.update(JobStatus=2, JobCurrentStartDate=int(started))
        if removed:
            _kill(process)
        limit = ad.get("AllowedJobDuration")
        held = False
        while process.poll() is None:
            if limit is not None and time.time() - started > limit:
                held = True
                _kill(process)
                break
            if self._stop.wait(0.02):
                _kill(process)
                return
        ru_wall = time.time() - started
        status = process.wait()
        with self.lock:
            self._procs.pop(job_id, None)
            live = self.queue.get(job_id)
            if live is None:
                return
            live.update(RemoteWallClockTime=ru_wall, RemoteUserCpu=0.0, RemoteSysCpu=0.0)
            if live["JobStatus"] == 3:  # removed while running
                self.done.append(self.queue.pop(job_id))
                shutil.rmtree(scratch, ignore_errors=True)
                return
            if held:
                live.update(
                    JobStatus=5,
                    HoldReasonCode=46,
                    HoldReason="The job exceeded allowed job duration",
                )
                shutil.rmtree(scratch, ignore_errors=True)
                return
        # transfer back: stdout/stderr, then the listed output files (remapped)
        shutil.copyfile(out, ad["Out"])
        shutil.copyfile(err, ad["Err"])
        remaps = dict(
            (a.strip(), b.strip())
            for a, _, b in (r.partition("=") for r in ad["TransferOutputRemaps"].split(";") if r)
        )
        missing = None
        for name in filter(None, (n.strip() for n in ad["TransferOutput"].split(","))):
            source = scratch / name
            if not source.exists():
                missing = name
                break
            target = Path(remaps.get(name, name))
            shutil.copyfile(source, target if target.is_absolute() else Path(ad["Iwd"]) / target)
        shutil.rmtree(scratch, ignore_errors=True)
        with self.lock:
            live = self.queue.get(job_id)
            if live is None:
                return
            if missing:
                live.update(
                    JobStatus=5,
                    HoldReasonCode=12,
                    HoldReason=f"Transfer output files failure: {missing}",
                )
                return
            if status < 0:
                live.update(ExitBySignal=True, ExitSignal=-status)
            else:
                live.update(ExitBySignal=False, ExitCode=status)
            live["JobStatus"] = 4
            self.done.append(self.queue.pop(job_id))


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _project(ad: Mapping[str, Any], projection: list[str]) -> dict[str, Any]:
    return {k: ad[k] for k in projection if k in ad} if projection else dict(ad)


def _match(ad: Mapping[str, Any], constraint: str) -> bool:
    for part in (p.strip() for p in constraint.split("&&")):
        m = re.fullmatch(r'(\w+) == "(.*)"', part)
        if m:
            if str(ad.get(m.group(1))) != m.group(2):
                return False
            continue
        m = re.fullmatch(r"member\((\w+), \{(.*)\}\)", part)
        if m:
            values = json.loads(f"[{m.group(2)}]")
            if ad.get(m.group(1)) not in values:
                return False
            continue
        raise ValueError(f"the fake schedd does not understand {part!r}")
    return True


class FakeHTCondor:
    """Stands in for the ``htcondor2`` module: one schedd, reachable by any handle."""

    JobAction = JobAction
    DaemonType = DaemonType
    Submit = Submit

    def __init__(self) -> None:
        self.schedd = FakeSchedd()

    def Schedd(self, location: Any = None) -> FakeSchedd:
        return self.schedd

    def Collector(self, pool: str | None = None) -> Any:
        class _Collector:
            def locate(self, daemon_type: DaemonType, name: str | None = None) -> dict[str, str]:
                return {"Name": name or "schedd", "MyType": "Scheduler"}

        return _Collector()
