"""Job tokens: what lets a running job call Orchid's REST API as its workflow's owner.

A job of a work with ``api_token: true`` gets ``ORCHID_TOKEN`` in its environment:
``orc_job.<job id>.<attempt>.<mac>``, where the mac is an HMAC-SHA256, under a key only
Orchid's services know, of the workflow, job and attempt. Nothing is stored: the API checks
the mac and that the attempt is the job's current one and still submitted or running, so a
token stops working when its attempt ends. It acts on its own workflow only: what it may
do is decided in one place, :mod:`orchid.web.access` (routes refuse it unless they are among
those a job needs, which confine it to its workflow; the monitor refuses it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

JOB_TOKEN_PREFIX = "orc_job."  # '.' never occurs in local tokens (URL-safe base64)
_FORM = re.compile(r"^orc_job\.([1-9][0-9]{0,17})\.([1-9][0-9]{0,8})\.([A-Za-z0-9_-]{43})$")


def _mac(key: bytes, workflow_id: int, job_id: int, attempt: int) -> str:
    digest = hmac.new(key, f"{workflow_id}:{job_id}:{attempt}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make(key: bytes, workflow_id: int, job_id: int, attempt: int) -> str:
    """The token of one attempt of one job."""
    return f"{JOB_TOKEN_PREFIX}{job_id}.{attempt}.{_mac(key, workflow_id, job_id, attempt)}"


def parse(token: str) -> tuple[int, int, str] | None:
    """(job id, attempt, mac) of a well-formed job token, else None."""
    m = _FORM.match(token)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), m.group(3)


def valid(key: bytes, token: str, workflow_id: int) -> bool:
    """Whether ``token`` was made with ``key`` for its job and attempt of ``workflow_id``."""
    parts = parse(token)
    if parts is None:
        return False
    job_id, attempt, mac = parts
    return hmac.compare_digest(mac, _mac(key, workflow_id, job_id, attempt))
