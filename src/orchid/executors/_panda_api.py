"""panda-client, as the PanDA executor uses it: the server, task parameters, job descriptions.

Apart from :mod:`orchid.executors.panda` so the executor keeps to following jobs.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from typing import Any, Literal

from pydantic import Field

from orchid.config import environment
from orchid.errors import ConfigError
from orchid.executors import _process as proc
from orchid.executors.base import ExecutorOptions, JobSpec, Usage
from orchid.extras import missing


class PandaOptions(ExecutorOptions):
    url: str = Field(description="the PanDA server, https://HOST:25443/server/panda")
    site: str | None = Field(None, description="the PanDA queue jobs go to unless a work says")
    vo: str = "wlcg"
    working_group: str | None = None
    prod_source_label: str = "managed"
    processing_type: str = "orchid"
    user_name: str | None = Field(None, description="the task owner (default: the token's)")
    auth: Literal["oidc", "x509"] = "oidc"
    token_env: str | None = Field(None, description="variable holding the OIDC token")
    auth_vo: str | None = Field(None, description="PANDA_AUTH_VO (default: vo)")
    verify_host: bool = True
    monitor_url: str | None = Field(None, description="log links: {monitor_url}/job?pandaid=N")
    python: str = "python3"
    namespace: str | None = None
    poll_interval: float = Field(30.0, gt=0, description="seconds between status queries")
    slots: int = Field(10_000, ge=1, description="jobs in flight")
    status_broker: str | None = Field(None, description="a [brokers.NAME] PanDA publishes to")
    status_destination: str | None = Field(None, description="its job status queue")


RUNNING = frozenset({"starting", "running", "holding", "transferring", "merging"})
FAILED = frozenset({"failed", "cancelled", "closed", "broken", "lost"})
DEAD_TASK = frozenset({"broken", "aborted", "failed", "exhausted", "tobroken", "aborting"})
TASK_ID = re.compile(r"jediTaskID=(\d+)")
WALLTIME = re.compile(r"wall\s*time|time\s*limit", re.IGNORECASE)


def panda_client(options: PandaOptions) -> Any:
    """panda-client's ``Client`` module, pointed at the configured server.

    panda-client reads its server and authentication from the environment (some of it when
    it is imported), so they are set here: one PanDA server per agent process.
    """
    env = {
        "PANDA_URL": options.url,
        "PANDA_URL_SSL": options.url,
        "PANDACACHE_URL": options.url,
        "PANDA_BEHIND_REAL_LB": "1",  # no DNS round-robin lookups of the server's name
    }
    if options.auth == "oidc":
        env["PANDA_AUTH"] = "oidc"
        env["PANDA_AUTH_VO"] = options.auth_vo or options.vo
        token = environment(options.token_env) if options.token_env else None
        if options.token_env and not token:
            raise ConfigError(
                f"the panda executor's token_env names {options.token_env}, which is not set"
            )
        if token:
            env["PANDA_AUTH_ID_TOKEN"] = token
    if not options.verify_host:
        env["PANDA_VERIFY_HOST"] = "off"
    os.environ.update(env)
    try:
        client = importlib.import_module("pandaclient.Client")
    except ModuleNotFoundError as exc:
        raise missing("panda", exc, "the panda executor") from None
    base = options.url.rstrip("/")
    root = re.match(r"^(https?://[^/]+)", base)
    api = (root.group(1) if root else base) + "/api/v1"
    for attr, value in (
        ("baseURL", base),
        ("baseURLSSL", base),
        ("baseURLCSRVSSL", base),
        ("server_base_path", api),
        ("server_base_path_ssl", api),
        ("cache_base_path_ssl", api),
    ):
        setattr(client, attr, value)
    return client


def task_params(task: str, spec: JobSpec, lfns: list[str], opts: PandaOptions) -> dict[str, Any]:
    """The parameters of the task of ``spec``'s work, with ``lfns`` as its pseudo-inputs."""
    res = spec.resources
    root = re.match(r"^(https?://[^/]+)", opts.url)
    cache = root.group(1) if root else opts.url.rstrip("/")  # where GET /cache/NAME serves
    params: dict[str, Any] = {
        "taskName": task,
        "vo": opts.vo,
        "prodSourceLabel": opts.prod_source_label,
        "processingType": opts.processing_type,
        "taskType": "orchid",
        "noInput": True,
        "pfnList": lfns,
        "nFiles": len(lfns),
        "nFilesPerJob": 1,
        "maxAttempt": 1,
        "maxFailure": 1,
        "skipScout": True,
        "coreCount": res.cores,
        "architecture": "",
        "transUses": "",
        "transHome": None,
        "transPath": "orchid-job",
        "jobParameters": [
            {
                "type": "constant",
                "value": f"{opts.python} -m orchid.executors.pandajob --cache {cache}",
            },
            {
                "type": "template",
                "param_type": "input",
                "value": "${IN/L}",
                "dataset": "pseudo_dataset",
            },
        ],
        "orchidWork": spec.work_name,
    }
    site = res.queue or opts.site
    if site:
        params["site"] = site
    if opts.working_group:
        params["workingGroup"] = opts.working_group
    if opts.user_name:
        params["userName"] = opts.user_name
    if res.memory_mb:
        params.update(ramCount=res.memory_mb, ramUnit="MB")
    if res.walltime_s:
        params["maxWalltime"] = max(1, round(res.walltime_s))
    return params


def pseudo_input(desc: Any) -> str | None:
    for f in getattr(desc, "Files", []) or []:
        if f.type in ("input", "pseudo_input"):
            return str(f.lfn)
    return None


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def failure(desc: Any, spec: JobSpec) -> str:
    if str(desc.jobStatus) == "cancelled":
        return "cancelled in PanDA"
    diag = next(
        (
            str(d)
            for d in (
                desc.exeErrorDiag,
                desc.pilotErrorDiag,
                desc.taskBufferErrorDiag,
                desc.supErrorDiag,
            )
            if d and str(d) != "NULL"
        ),
        "",
    )
    if spec.resources.walltime_s and WALLTIME.search(diag):
        return f"walltime of {spec.resources.walltime_s:g}s exceeded (PanDA: {diag})"
    code = as_int(desc.transExitCode)
    head = f"exit code {code}" if code else f"PanDA job {desc.jobStatus}"
    return proc.truncate(f"{head}: {diag}" if diag else head)


def result_of(metadata: Any) -> tuple[Any, str | None]:
    if metadata in (None, "", "NULL"):
        return None, None
    try:
        return json.loads(metadata) if isinstance(metadata, str) else metadata, None
    except ValueError as exc:
        return None, proc.truncate(f"the job's result (PanDA metadata) is not valid JSON: {exc}")


def usage_of(desc: Any) -> Usage:
    wall = 0.0
    start: Any = getattr(desc, "startTime", None)
    end: Any = getattr(desc, "endTime", None)
    if hasattr(start, "timestamp") and hasattr(end, "timestamp"):
        wall = max(0.0, end.timestamp() - start.timestamp())
    return Usage(
        wall_s=wall,
        cpu_user_s=float(as_int(desc.cpuConsumptionTime) or 0),
        cpu_system_s=0.0,
        max_rss_kb=as_int(desc.maxRSS) or 0,
    )
