"""Values crossing to and from jobs, as JSON envelopes the server stores without looking in.

An envelope is one of

- ``{"json": value}``: the value itself, when it is plain JSON (``dict`` with text keys,
  ``list``, ``str``, ``int``, finite ``float``, ``bool``, ``None``; exactly these types, so
  that what comes back is what went in: a tuple or a set is pickled, not turned into a list);
- ``{"pickle": "<base64>"}``: its cloudpickle bytes, when they are small;
- ``{"cache": "<sha256>", "size": n}``: the cloudpickle bytes in the cache, when they are not.

Only :func:`decode` unpickles, and only the job wrapper and the caller's futures call it:
never the server. Kept light: ``orchid-job`` imports this module in every job.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any

INLINE_BYTES = 48 * 1024  # pickles up to this size travel inline (base64: under 64 KiB)
MAX_DEPTH = 100

Envelope = dict[str, Any]


def is_plain_json(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` survives a JSON round trip unchanged, types included."""
    if depth > MAX_DEPTH:
        return False
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(is_plain_json(v, depth + 1) for v in value)
    if kind is dict:
        return all(type(k) is str and is_plain_json(v, depth + 1) for k, v in value.items())
    return False


def encode(value: Any, what: str, put: Callable[[bytes], str] | None = None) -> Envelope:
    """The envelope of ``value``; ``put`` stores big pickles (returns their sha256).

    Raises :class:`~orchid.fat.errors.SerializationError` naming ``what`` if the value
    cannot be pickled either.
    """
    if is_plain_json(value):
        return {"json": value}
    data = dumps(value, what)
    if len(data) > INLINE_BYTES and put is not None:
        return {"cache": put(data), "size": len(data)}
    return {"pickle": base64.b64encode(data).decode("ascii")}


def dumps(value: Any, what: str) -> bytes:
    """cloudpickle bytes of ``value``, or SerializationError saying what to do instead."""
    import cloudpickle

    try:
        return bytes(cloudpickle.dumps(value))
    except Exception as exc:
        from orchid.fat.errors import SerializationError

        kind = type(value).__name__
        raise SerializationError(
            f"{what} cannot be sent to or from a job: it is not JSON and cloudpickle "
            f"cannot pickle it ({kind}: {type(exc).__name__}: {exc}). Pass plain data "
            "(numbers, text, lists, dicts, arrays), or a value that can be pickled, instead "
            "of handles such as open files, locks, sockets or database connections"
        ) from exc


def decode(envelope: Any, get: Callable[[str], bytes] | None = None) -> Any:
    """The value an envelope holds; ``get`` fetches cached bytes by sha256."""
    if not isinstance(envelope, dict) or len(envelope) not in (1, 2):
        raise ValueError(f"not a value envelope: {str(envelope)[:80]}")
    if "json" in envelope:
        return envelope["json"]
    if "pickle" in envelope:
        return loads(base64.b64decode(envelope["pickle"]))
    if "cache" in envelope:
        if get is None:
            raise ValueError("this value is in the cache, and there is no cache to read here")
        return loads(get(str(envelope["cache"])))
    raise ValueError(f"not a value envelope: {str(envelope)[:80]}")


def loads(data: bytes) -> Any:
    import pickle

    return pickle.loads(data)


def canonical(value: Any) -> str:
    """Compact JSON with sorted keys: what identities (digests) are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
