"""Sending one request: retries with backoff where that is safe, and errors mapped to types.

A request is retried when it cannot have had an effect, or when repeating it is harmless:

- a connection that could not be made (refused, unknown host, connect time-out): the
  request never left, so any request, a submission too, is tried again;
- for reads (GET, HEAD) and cache uploads (PUT, content-addressed), also a connection lost
  mid-way and 502/503/504 answers.

A POST that was sent is never sent again: the server may have acted on it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from orchid.client.errors import ServerError, Unreachable, from_response

RETRY_STATUSES = frozenset({502, 503, 504})
# sent twice, these do what they did once (PUT: the cache stores bytes under their digest)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT"})
# httpx errors raised before a byte of the request was sent
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Retry:
    """How hard to try: ``attempts`` in all, waiting ``backoff`` s, doubling up to ``max_delay``
    (with jitter, so that many clients do not come back at the same instant)."""

    attempts: int = 4
    backoff: float = 0.25
    max_delay: float = 4.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.max_delay < 0:
            raise ValueError("attempts must be at least 1, delays not negative")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1, 2, ...)."""
        base = min(self.max_delay, self.backoff * 2.0 ** (failures - 1))
        return base * (0.5 + random.random() / 2)  # jitter, not a secret


NO_RETRY = Retry(attempts=1, backoff=0.0, max_delay=0.0)

BodyFactory = Callable[[], Iterator[bytes]]


class Http:
    """An ``httpx.Client`` that retries and raises :mod:`orchid.client.errors`."""

    def __init__(
        self,
        client: httpx.Client,
        retry: Retry,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.retry = retry
        self.sleep = sleep

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        body: BodyFactory | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        timeout: httpx.Timeout | None = None,
        ok: frozenset[int] = frozenset(),
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send, retrying what is safe to retry; a 2xx answer (or a status in ``ok``) is
        returned, anything else raised. ``stream``: the caller reads and closes the body.
        ``idempotent``: a POST that may be sent twice (default: by the method)."""
        if idempotent is None:
            idempotent = method in IDEMPOTENT
        failures = 0
        while True:
            started = [False]
            request = self.client.build_request(
                method,
                path,
                params=_query(params),
                json=json_body,
                content=_watched(body(), started) if body is not None else content,
                headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            try:
                response = self.client.send(request, stream=stream)
            except NOT_SENT as exc:
                failures += 1
                if (started[0] and not idempotent) or failures >= self.retry.attempts:
                    raise self._unreachable(request, exc, failures) from None
            except httpx.TransportError as exc:
                failures += 1
                if not idempotent:
                    raise Unreachable(
                        f"lost the connection to {_origin(request)} after sending "
                        f"{method} {request.url.path} ({_reason(exc)}): it may or may not have "
                        "been applied; look before sending it again"
                    ) from None
                if failures >= self.retry.attempts:
                    raise self._unreachable(request, exc, failures) from None
            else:
                if response.is_success or response.status_code in ok:
                    return response
                failures += 1
                if (
                    idempotent
                    and response.status_code in RETRY_STATUSES
                    and failures < self.retry.attempts
                ):
                    response.close()
                else:
                    raise error_of(response)
            self.sleep(self.retry.delay(failures))

    def _unreachable(self, request: httpx.Request, exc: Exception, tries: int) -> Unreachable:
        times = "once" if tries == 1 else f"{tries} times"
        return Unreachable(f"cannot reach {_origin(request)}: {_reason(exc)} (tried {times})")


def error_of(response: httpx.Response) -> Exception:
    """The error an HTTP error answer stands for (its body is read and the response closed)."""
    try:
        raw = response.read()
    except httpx.HTTPError:
        raw = b""
    finally:
        response.close()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    text = raw.decode("utf-8", "replace").strip()[:200]
    phrase = response.reason_phrase or "error"
    fallback = f"HTTP {response.status_code} {phrase}" + (f": {text}" if text else "")
    return from_response(response.status_code, body, fallback)


def decode(response: httpx.Response) -> Any:
    """The JSON body of a successful answer."""
    try:
        return response.json()
    except ValueError:
        raise ServerError(
            f"{response.request.url} answered {response.status_code} with something that is "
            "not JSON: is this an Orchid server?",
            status=response.status_code,
        ) from None


QueryValue = str | int | float | bool | None


def read_chunks(response: httpx.Response) -> Iterator[bytes]:
    """A streamed body, a connection broken mid-way being :class:`Unreachable`."""
    try:
        yield from response.iter_bytes()
    except httpx.TransportError as exc:
        raise Unreachable(
            f"the connection broke while reading {response.request.url}: {_reason(exc)}"
        ) from None


def _query(params: Mapping[str, Any] | None) -> list[tuple[str, QueryValue]] | None:
    if params is None:
        return None
    out: list[tuple[str, QueryValue]] = []
    for key, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        out.extend((key, str(v)) for v in values if v is not None)
    return out


def _watched(chunks: Iterator[bytes], started: list[bool]) -> Iterator[bytes]:
    """``chunks``, noting in ``started[0]`` that sending began (a request body was read)."""
    for chunk in chunks:
        started[0] = True
        yield chunk


def _origin(request: httpx.Request) -> str:
    url = request.url
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    return text.splitlines()[0][:200]
