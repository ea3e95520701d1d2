"""JSON values as Orchid stores them: standard JSON only, so NaN and infinities are refused.

Python's ``json`` module reads and writes ``NaN``/``Infinity`` by default, but
PostgreSQL (and every other JSON reader) rejects them: one such value in a
result or parameter would be stored on SQLite and crash the agents on PostgreSQL.
"""

from __future__ import annotations

import json
import math
from typing import Any


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or infinity)")


_DECODER = json.JSONDecoder(parse_constant=_refuse)  # one for all: building one costs more


def loads(text: str | bytes) -> Any:
    """``json.loads`` that refuses ``NaN``, ``Infinity`` and ``-Infinity`` (ValueError)."""
    if isinstance(text, bytes | bytearray):
        text = text.decode(json.detect_encoding(text), "surrogatepass")  # as json.loads
    return _DECODER.decode(text)


def non_finite(value: Any) -> bool:
    """Whether a decoded JSON value holds a NaN or an infinity anywhere."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float):
            if not math.isfinite(v):
                return True
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
    return False
