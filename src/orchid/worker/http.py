"""The server over HTTP, as a worker's :class:`~orchid.worker.loop.Lessor`: the four
``/api/v1/workers`` routes with a worker's token, through the client's retrying transport
(renewals, reports and releases may be sent twice: a second report of recorded ends is
refused as not held, which the worker drops)."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from orchid import __version__
from orchid.client._http import Http, Retry, decode
from orchid.client.config import normalize_url
from orchid.client.errors import Conflict
from orchid.errors import LeaseLost
from orchid.executors.workerwire import (
    LeaseIn,
    LeaseOut,
    ReleaseIn,
    ReleaseOut,
    RenewIn,
    RenewOut,
    ReportIn,
    ReportOut,
)

API = "/api/v1/workers"
_JSON = {"Content-Type": "application/json"}
Out = TypeVar("Out", bound=BaseModel)


class HttpLessor:
    """A worker's view of the server at ``url`` (``token``: a worker's token)."""

    def __init__(self, url: str, token: str, *, timeout: float = 60.0, verify: Any = True) -> None:
        self.url = normalize_url(url)
        self._client = httpx.Client(
            base_url=self.url + API,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"orchid-worker/{__version__}",
            },
            timeout=timeout,
            verify=verify,
        )
        self._http = Http(self._client, Retry(attempts=5, backoff=0.5, max_delay=8.0))

    def _post(self, path: str, body: BaseModel, out: type[Out], idempotent: bool) -> Out:
        response = self._http.request(
            "POST",
            path,
            content=body.model_dump_json().encode(),  # (pydantic's own JSON: no dict between)
            headers=_JSON,
            ok=frozenset({409}),
            idempotent=idempotent,
        )
        if response.status_code != 409:
            try:
                return out.model_validate_json(response.content)
            except ValueError:
                pass  # not the answer it should be: decode says what it is
        data = decode(response)
        if response.status_code == 409:
            message = str(data.get("error", "")) if isinstance(data, dict) else ""
            refused = data.get("refused") if isinstance(data, dict) else None
            if not refused:
                raise Conflict(message or "HTTP 409 Conflict", status=409)
            raise LeaseLost(message, [(int(a["job_id"]), int(a["attempt"])) for a in refused])
        return out.model_validate(data)

    def lease(self, body: LeaseIn) -> LeaseOut:
        return self._post("/lease", body, LeaseOut, idempotent=False)

    def renew(self, body: RenewIn) -> RenewOut:
        return self._post("/renew", body, RenewOut, idempotent=True)

    def report(self, body: ReportIn) -> ReportOut:
        return self._post("/report", body, ReportOut, idempotent=True)

    def release(self, body: ReleaseIn) -> ReleaseOut:
        return self._post("/release", body, ReleaseOut, idempotent=True)

    def close(self) -> None:
        self._client.close()
