"""JSON values as Orchid stores them: standard JSON only, so NaN and infinities are refused,
and nested at most ``MAX_DEPTH`` levels deep.

Python's ``json`` module reads and writes ``NaN``/``Infinity`` by default, but
PostgreSQL (and every other JSON reader) rejects them: one such value in a
result or parameter would be stored on SQLite and crash the agents on PostgreSQL.
A value nested a few hundred levels deep is stored fine and then cannot be
serialised again (pydantic and ``json`` both stop at a recursion limit), so it is
refused where it comes in.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64  # levels of lists and objects; real documents stay far below
TOO_DEEP = f"is nested more than {MAX_DEPTH} levels deep; flatten it"


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or infinity)")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # a Python function called per object: the interpreter may hand the GIL to another
    # thread between two, which one C call over a whole large document never does
    return dict(pairs)


_DECODER = json.JSONDecoder(parse_constant=_refuse)  # one for all: building one costs more
_SHARING = json.JSONDecoder(parse_constant=_refuse, object_pairs_hook=_object)


def loads(text: str | bytes, *, share_gil: bool = False) -> Any:
    """``json.loads`` that refuses ``NaN``, ``Infinity``, ``-Infinity`` and values nested
    more than ``MAX_DEPTH`` deep (ValueError).

    ``share_gil``: let other threads run while a large text is decoded (a server's event
    loop, while a thread decodes a submission of many MB), for ~10% more time.
    """
    if isinstance(text, bytes | bytearray):
        text = text.decode(json.detect_encoding(text), "surrogatepass")  # as json.loads
    try:
        value = (_SHARING if share_gil else _DECODER).decode(text)
    except RecursionError:
        raise ValueError(f"the value {TOO_DEEP}") from None
    # only a text with more brackets than the limit can nest that deep: the walk is rare
    if text.count("[") + text.count("{") > MAX_DEPTH and too_deep(value):
        raise ValueError(f"the value {TOO_DEEP}")
    return value


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and objects in ``value`` nest more than ``limit`` levels."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict | list | tuple):
            if depth >= limit:
                return True
            children = v.values() if isinstance(v, dict) else v
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list | tuple))
    return False


def problem(value: Any) -> str | None:
    """Why a decoded value cannot be stored as JSON (NaN/infinity, too deep), or None."""
    if too_deep(value):
        return TOO_DEEP
    if non_finite(value):
        return "holds NaN or an infinity, which JSON cannot hold"
    return None


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
