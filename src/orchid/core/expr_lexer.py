"""The tokenizer of the expression language in :mod:`orchid.core.expr`, and its error format.

Pure and standard-library only. Every error points at a column of the expression
with a caret line, so a scientist can see at once what to fix.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from orchid.errors import ExpressionError

KEYWORDS = frozenset({"and", "or", "not", "in"})
_DIGITS = "0123456789"
_TWO_CHAR_OPS = frozenset({"**", "//", "==", "!=", "<=", ">="})
_ONE_CHAR_OPS = frozenset("+-*/%<>()[],.")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}
_HINTS = {
    "&": "use 'and'",
    "|": "use 'or'",
    "!": "use 'not' (or '!=' to compare)",
    "=": "use '==' to compare",
    "{": "objects cannot be written in expressions",
    "}": "'}' may only appear inside a string",
    "$": "'${...}' is for template strings; inside an expression write the name alone",
}


class Token(NamedTuple):
    kind: str  # "num", "str", "name", "kw", "op" or "end"
    text: str  # the source text of the token
    value: Any  # the number or the decoded string, else None
    pos: int  # offset of the token's first character in the expression


def describe(tok: Token) -> str:
    """How a token is named in error messages."""
    if tok.kind == "end":
        return "end of expression"
    if tok.kind in ("num", "str", "name"):
        noun = {"num": "number", "str": "string", "name": "name"}[tok.kind]
        return f"{noun} {tok.text[:40]}" if tok.kind != "name" else f"name '{tok.text}'"
    return f"'{tok.text}'"


def error_at(text: str, pos: int, message: str) -> ExpressionError:
    """An ExpressionError whose message shows the expression with a caret under ``pos``."""
    pos = max(0, min(pos, len(text)))
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start : len(text) if end < 0 else end].replace("\t", " ")
    col = pos - start
    lo = max(0, col - 50)
    hi = min(len(line), lo + 100)
    snippet = ("..." if lo else "") + line[lo:hi] + ("..." if hi < len(line) else "")
    caret = " " * (col - lo + (3 if lo else 0)) + "^"
    where = f"column {col + 1}"
    if "\n" in text:
        where = f"line {text.count(chr(10), 0, pos) + 1}, {where}"
    return ExpressionError(f"{message} (at {where})\n    {snippet}\n    {caret}")


def _is_name_start(c: str) -> bool:
    return c.isascii() and (c.isalpha() or c == "_")


def _is_name_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


def _number(text: str, i: int) -> tuple[Token, int]:
    n = len(text)
    j = i
    while j < n and text[j] in _DIGITS:
        j += 1
    is_float = False
    if j < n and text[j] == "." and not _is_name_start(text[j + 1 : j + 2] or "0"):
        is_float = True
        j += 1
        while j < n and text[j] in _DIGITS:
            j += 1
    if j < n and text[j] in "eE":
        k = j + 1
        if k < n and text[k] in "+-":
            k += 1
        if k < n and text[k] in _DIGITS:
            is_float = True
            j = k
            while j < n and text[j] in _DIGITS:
                j += 1
    if j < n and _is_name_char(text[j]):
        while j < n and _is_name_char(text[j]):
            j += 1
        raise error_at(text, i, f"invalid number '{text[i:j]}'")
    literal = text[i:j]
    try:
        value: int | float = float(literal) if is_float else int(literal)
    except ValueError:
        raise error_at(text, i, "number literal is too long") from None
    if isinstance(value, float) and math.isinf(value):
        raise error_at(text, i, f"number {literal} is out of range")
    return Token("num", literal, value, i), j


def _string(text: str, i: int) -> tuple[Token, int]:
    quote, n, j = text[i], len(text), i + 1
    out: list[str] = []
    while True:
        if j >= n:
            raise error_at(text, i, f"unterminated string: add the closing {quote}")
        c = text[j]
        if c == quote:
            return Token("str", text[i : j + 1], "".join(out), i), j + 1
        if c != "\\":
            out.append(c)
            j += 1
            continue
        esc = text[j + 1 : j + 2]
        if esc and esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            j += 2
        elif (
            esc == "u"
            and len(digits := text[j + 2 : j + 6]) == 4
            and all(d in "0123456789abcdefABCDEF" for d in digits)
        ):
            out.append(chr(int(digits, 16)))
            j += 6
        elif not esc:
            raise error_at(text, i, f"unterminated string: add the closing {quote}")
        else:
            raise error_at(
                text, j, f"unknown escape '\\{esc}' in string (write '\\\\' for a backslash)"
            )


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, always ending with an ``end`` token."""
    tokens: list[Token] = []
    n, i = len(text), 0
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in _DIGITS or (c == "." and i + 1 < n and text[i + 1] in _DIGITS):
            tok, i = _number(text, i)
            tokens.append(tok)
        elif c in "'\"":
            tok, i = _string(text, i)
            tokens.append(tok)
        elif _is_name_start(c):
            j = i + 1
            while j < n and _is_name_char(text[j]):
                j += 1
            word = text[i:j]
            tokens.append(Token("kw" if word in KEYWORDS else "name", word, None, i))
            i = j
        elif text[i : i + 2] in _TWO_CHAR_OPS:
            tokens.append(Token("op", text[i : i + 2], None, i))
            i += 2
        elif c in _ONE_CHAR_OPS:
            tokens.append(Token("op", c, None, i))
            i += 1
        else:
            hint = f"; {_HINTS[c]}" if c in _HINTS else ""
            raise error_at(text, i, f"unexpected character {c!r}{hint}")
    tokens.append(Token("end", "", None, n))
    return tokens


def find_binding_end(text: str, start: int) -> int:
    """Offset of the '}' closing a binding whose expression starts at ``start``, or -1.

    A '}' inside a quoted string does not count; backslash escapes are honoured.
    """
    n, j = len(text), start
    while j < n:
        c = text[j]
        if c == "}":
            return j
        if c in "'\"":
            j += 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
        j += 1
    return -1
