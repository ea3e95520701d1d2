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
from orchid.executors.base import ExecutorOptions, JobSpec, Resources, Usage
from orchid.extras import missing


class PandaOptions(ExecutorOptions):
    url: str = Field(description="the PanDA server, https://HOST:25443/server/panda")
    site: str | None = Field(None, description="the PanDA queue jobs go to unless a work says")
    vo: str = "wlcg"
    cloud: str | None = Field(
        None, description="the site's cloud: set, JEDI skips task brokerage (as iDDS does)"
    )
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
    release_broker: str | None = Field(
        None, description="the [brokers.NAME] of JEDI's message processor (iDDS's broker)"
    )
    release_destination: str | None = Field(
        None, description="the queue JEDI takes file_processing messages from"
    )
    cache_url: str | None = Field(
        None, description="where pilots GET {cache_url}/cache/NAME (default: the server's root)"
    )


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


def status_call(client: Any) -> Any:
    """``job/get_status`` through panda-client's own request machinery (its auth): the
    state of many jobs in one call, far lighter than their descriptions. panda-client
    has no function for it; ``(status, [{"status", "command"}, ...])``."""

    def payload(job_ids: list[int], verbose: bool = False) -> dict[str, Any]:
        return {"job_ids": job_ids}

    return client.http_request_decorator(endpoint="job/get_status", method="get", json_out=True)(
        payload
    )


def task_params(
    task: str,
    files: list[str],
    resources: Resources,
    opts: PandaOptions,
    *,
    trans_path: str,
    prefix: str,
    held: bool,
) -> dict[str, Any]:
    """The parameters of a task with ``files`` as its pseudo-inputs, one job each; with
    ``held``, JEDI holds each job until its file is reported staged (``inputPreStaging``)."""
    params: dict[str, Any] = {
        "taskName": task,
        "uniqueTaskName": True,
        "vo": opts.vo,
        "prodSourceLabel": opts.prod_source_label,
        "processingType": opts.processing_type,
        "taskType": opts.prod_source_label,
        "taskPriority": 900,
        "noInput": True,
        "pfnList": files,
        "nFiles": len(files),
        "nFilesPerJob": 1,
        "maxAttempt": 1,  # Orchid retries: each attempt is a file of its own
        "maxFailure": 1,
        "skipScout": True,
        "noWaitParent": True,
        "pushStatusChanges": True,  # job and task status messages, if the server sends any
        "coreCount": resources.cores,
        "architecture": "",
        "transUses": "",
        "transHome": None,
        "transPath": trans_path,
        "log": {
            "dataset": f"{task}.log",
            "type": "template",
            "param_type": "log",
            "token": "local",
            "destination": "local",
            "value": f"{task}.log.${{SN}}.log.tgz",
        },
        "jobParameters": [
            {"type": "constant", "value": f"--cache {cache_of(opts)} --prefix {prefix}"},
            {
                "type": "template",
                "param_type": "input",
                "value": "${IN/L}",
                "dataset": "pseudo_dataset",
            },
        ],
    }
    if held:
        # as iDDS does: JEDI makes a job for a file only once it is "staged", which the
        # executor reports with a file_processing message when it releases that attempt
        params.update(inputPreStaging=True, prestagingRuleID=123, nChunksToWait=1)
    site = resources.queue or opts.site
    if site:
        params["site"] = site
    if opts.cloud:
        params["cloud"] = opts.cloud
    if opts.working_group:
        params["workingGroup"] = opts.working_group
    if opts.user_name:
        params["userName"] = opts.user_name
    if resources.memory_mb:
        params.update(ramCount=resources.memory_mb, ramUnit="MB")
    if resources.walltime_s:
        # JEDI gives a job cpuTime × events / cores / efficiency + baseWalltime seconds:
        # with no time per event, exactly baseWalltime (the pilot enforces the job's)
        seconds = max(1, round(resources.walltime_s))
        params.update(
            walltime=seconds,
            walltimeUnit="s",
            cpuTime=0,
            cpuTimeUnit="HS06sPerEvent",
            cpuEfficiency=100,
            baseWalltime=seconds,
        )
    return params


def cache_of(opts: PandaOptions) -> str:
    """Where the pilots fetch cache files: ``{cache}/cache/NAME``."""
    if opts.cache_url:
        return opts.cache_url.rstrip("/")
    root = re.match(r"^(https?://[^/]+)", opts.url)
    return root.group(1) if root else opts.url.rstrip("/")


def file_message(task_id: int, files: dict[str, str]) -> dict[str, Any]:
    """iDDS's ``file_processing`` message to JEDI: these pseudo-inputs of the task are
    staged (``Available``: JEDI makes their jobs) or will never be (``Missing``)."""
    return {
        "msg_type": "file_processing",
        "workload_id": task_id,
        "relation_type": "input",
        "files": [
            {"scope": "pseudo_dataset", "name": name, "status": status}
            for name, status in files.items()
        ],
    }


def pseudo_input(desc: Any) -> str | None:
    """The job's pseudo-input file (without the ``NNNNNN:`` JEDI puts before it)."""
    for f in getattr(desc, "Files", []) or []:
        if f.type in ("input", "pseudo_input"):
            return str(f.lfn).rsplit(":", 1)[-1]
    params = str(getattr(desc, "jobParameters", "") or "").split()
    return params[-1] if params else None


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


KILLED_BY_PANDA = 1144  # the pilot's error code when the server told it to kill the job
TIME_LIMIT_CODES = frozenset({1200, 1201, 1213})  # pilot: killed by a signal / reached max time


def failure(desc: Any, spec: JobSpec) -> str:
    """Orchid's failure reason of an ended PanDA job, from what the server stores: the
    payload's exit code and error diagnostic, the pilot's error code and diagnostic."""
    pilot_code = as_int(desc.pilotErrorCode) or 0
    if str(desc.jobStatus) == "cancelled" or pilot_code == KILLED_BY_PANDA:
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
    if spec.resources.walltime_s and (pilot_code in TIME_LIMIT_CODES or WALLTIME.search(diag)):
        return f"walltime of {spec.resources.walltime_s:g}s exceeded (PanDA: {diag})"
    if pilot_code and not as_int(desc.transExitCode):
        return proc.truncate(
            f"pilot error {pilot_code}: {diag}" if diag else f"pilot error {pilot_code}"
        )
    code = as_int(desc.transExitCode)
    head = f"exit code {code}" if code else f"PanDA job {desc.jobStatus}"
    return proc.truncate(f"{head}: {diag}" if diag else head)


RESULT_KEY = "orchid_result"  # orchid.executors.pandajob writes {RESULT_KEY: result}


def result_of(metadata: Any) -> tuple[Any, str | None]:
    """The job's result from its PanDA metadata (the job report the pilot uploaded)."""
    if metadata in (None, "", "NULL"):
        return None, None
    try:
        doc = json.loads(metadata) if isinstance(metadata, str) else metadata
    except ValueError as exc:
        return None, proc.truncate(f"the job's result (PanDA metadata) is not valid JSON: {exc}")
    if isinstance(doc, dict) and RESULT_KEY in doc:
        return doc[RESULT_KEY], None
    return None, None  # a job report of something else


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
