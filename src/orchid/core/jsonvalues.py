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


_DECODER = json.JSONDecoder(parse_constant=_refuse)  # one for all: building one costs more


def loads(text: str | bytes) -> Any:
    """``json.loads`` that refuses ``NaN``, ``Infinity``, ``-Infinity`` and values nested
    more than ``MAX_DEPTH`` deep (ValueError)."""
    if isinstance(text, bytes | bytearray):
        text = text.decode(json.detect_encoding(text), "surrogatepass")  # as json.loads
    try:
        value = _DECODER.decode(text)
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


def size(value: Any, limit: int) -> int:
    """About how many bytes ``value`` takes as compact JSON text, counted only up to
    ``limit``: the walk stops as soon as the count passes it (and returns a number over
    ``limit``), so it costs O(limit) even for a value made of many references to one big
    value, whose text would be far larger than its memory.

    Exact for text without characters that JSON escapes (those count once).
    """
    return measure(value, limit)[0]


def measure(value: Any, limit: int) -> tuple[int, bool]:
    """:func:`size`, and whether every number in the part walked is finite (one walk)."""
    total, finite = 0, True
    stack = [value]
    while stack:
        v = stack.pop()
        kind = type(v)
        if kind is list or kind is tuple:
            total += 1 + len(v)  # brackets and commas
            if total > limit:
                return total, finite
            for item in v:  # scalars here, without a trip through the stack
                k = type(item)
                if k is int:
                    total += len(int.__repr__(item)) if -_BIG < item < _BIG else _digits(item)
                elif k is str:
                    total += len(item) + 2
                elif k is float:
                    total += len(float.__repr__(item))
                    finite = finite and math.isfinite(item)
                elif item is None or item is True:
                    total += 4
                elif item is False:
                    total += 5
                else:
                    stack.append(item)
        elif isinstance(v, dict):
            total += 1 + 2 * len(v)  # braces, colons and commas
            for k, item in v.items():
                total += len(k) + 2 if isinstance(k, str) else 8
                stack.append(item)
        elif isinstance(v, str):
            total += len(v) + 2
        elif v is None or v is True:
            total += 4
        elif v is False:
            total += 5
        elif isinstance(v, int):
            total += _digits(v)
        elif isinstance(v, float):
            total += len(float.__repr__(v))
            finite = finite and math.isfinite(v)
        elif isinstance(v, list | tuple):  # subclasses
            stack.append(list(v))
        else:
            total += 8
        if total > limit:
            return total, finite
    return total, finite


_BIG = 10**18


def _digits(n: int) -> int:
    """Characters of an integer in JSON (estimated from its bits when it is huge: Python
    refuses to write ints of more than 4300 digits)."""
    if -_BIG < n < _BIG:
        return len(int.__repr__(n))
    return int(n.bit_length() * 0.30103) + 2
