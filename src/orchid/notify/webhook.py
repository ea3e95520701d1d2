"""Signed HTTP webhooks: a batch of notifications as one JSON POST.

Body: ``{"source": ..., "sent_at": ..., "notifications": [...]}``. Headers:

- ``X-Orchid-Signature-256: sha256=<hex>``: HMAC-SHA256 of the exact body bytes with the
  subscriber's secret. Receivers recompute it and compare in constant time
  (:func:`verify`); ``sent_at`` in the signed body lets them refuse old replays.
- ``X-Orchid-Delivery``: the first and last notification ids of the batch.

Any 2xx answer accepts the whole batch; anything else (or no answer within the timeout)
fails it, and the conductor resends the same notifications, with the same ids, later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence

import httpx

from orchid.notify.base import DeliveryError, Notification

SIGNATURE_HEADER = "X-Orchid-Signature-256"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (for receivers)."""
    return header is not None and hmac.compare_digest(signature(secret, body), header)


class WebhookSender:
    def __init__(
        self,
        url: str,
        secret: str | None,
        *,
        source: str = "orchid",
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self._secret = secret
        self._source = source
        self._clock = clock
        self._timeout = timeout
        self._client: httpx.Client | None = None

    def send(self, batch: Sequence[Notification]) -> None:
        if not batch:
            return
        body = json.dumps(
            {
                "source": self._source,
                "sent_at": self._clock(),
                "notifications": [n.to_json() for n in batch],
            },
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Orchid-Delivery": f"{batch[0].id}..{batch[-1].id}",
            "User-Agent": "orchid-conductor",
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, body)
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout, follow_redirects=False)
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"POST {self.url} failed: {exc or type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryError(
                f"POST {self.url} answered {response.status_code}: {response.text[:200]}"
            )

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
