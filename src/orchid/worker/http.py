"""The server over HTTP, as a worker's :class:`~orchid.worker.loop.Lessor`: the four
``/api/v1/workers`` routes with a worker's token, through the client's retrying transport
(renewals, reports and releases may be sent twice: a second report of recorded ends is
refused as not held, which the worker drops)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from orchid import __version__
from orchid.client._http import Http, Retry
from orchid.client.config import normalize_url
from orchid.client.errors import ServerError, from_response
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


class Calls:
    """The four calls of a :class:`~orchid.worker.loop.Lessor`, each one :meth:`call` by
    its route's name; renewals, reports and releases may be sent twice (a second report
    of recorded ends is refused as not held, which the worker drops), leases may not."""

    def call(self, op: str, body: BaseModel, out: type[Out], idempotent: bool) -> Out:
        raise NotImplementedError

    def lease(self, body: LeaseIn) -> LeaseOut:
        return self.call("lease", body, LeaseOut, idempotent=False)

    def renew(self, body: RenewIn) -> RenewOut:
        return self.call("renew", body, RenewOut, idempotent=True)

    def report(self, body: ReportIn) -> ReportOut:
        return self.call("report", body, ReportOut, idempotent=True)

    def release(self, body: ReleaseIn) -> ReleaseOut:
        return self.call("release", body, ReleaseOut, idempotent=True)


class HttpLessor(Calls):
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

    def call(self, op: str, body: BaseModel, out: type[Out], idempotent: bool) -> Out:
        response = self._http.request(
            "POST",
            f"/{op}",
            content=body.model_dump_json().encode(),  # (pydantic's own JSON: no dict between)
            headers=_JSON,
            ok=frozenset({409}),
            idempotent=idempotent,
        )
        return answer_of(response.status_code, response.content, out)

    def close(self) -> None:
        self._client.close()


def answer_of(status: int, content: bytes | str, out: type[Out]) -> Out:
    """An answer of the server (a route's or the channel's) as ``out``, or the error it
    stands for: 409 naming attempts is :class:`LeaseLost`, other errors as the client
    raises them (``orchid.client.errors``)."""
    if 200 <= status < 300:
        try:
            return out.model_validate_json(content)
        except ValueError:
            raise ServerError(
                f"the server answered {status} with something that is not a {out.__name__}: "
                "is this an Orchid server?",
                status=status,
            ) from None
    try:
        data = json.loads(content) if content else None
    except ValueError:
        data = None
    if status == 409 and isinstance(data, dict) and data.get("refused"):
        refused = [(int(a["job_id"]), int(a["attempt"])) for a in data["refused"]]
        raise LeaseLost(str(data.get("error", "")), refused)
    raise from_response(status, data, f"HTTP {status}")
