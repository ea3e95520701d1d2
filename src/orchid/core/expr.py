"""A small, safe expression language over JSON values: conditions and ``${...}`` bindings.

``works.fit.outputs.chi2 < 1.5 and works.fit.status == 'succeeded'`` is tokenized
(:mod:`orchid.core.expr_lexer`), parsed by precedence climbing into a tree of the
node classes below, and evaluated against a mapping of names to JSON values.
Nothing here calls Python's eval: the only operations are those written out
below and the whitelisted functions of ``_FUNCTIONS``. Results are bounded
(length, nesting, size of integers, and the :class:`~orchid.core.limits.Limits` on lists,
strings and whole values, each checked before the value is built) so that no expression
can exhaust memory.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from orchid.core import jsonvalues
from orchid.core.expr_lexer import Token, describe, error_at, find_binding_end, tokenize
from orchid.core.limits import DEFAULT, Limits
from orchid.errors import ExpressionError

__all__ = ["Expr", "evaluate", "find_bindings", "interpolate", "parse"]

MAX_LENGTH = 10_000
MAX_DEPTH = 100
MAX_EXPONENT = 10_000
MAX_INT_BITS = 14_000  # about 4200 decimal digits: Python will not print longer ints

_OR, _AND, _NOT, _CMP, _ADD, _MUL, _UNARY, _POW = range(1, 9)
_PREC = {"or": _OR, "and": _AND, "in": _CMP, "not in": _CMP, "+": _ADD, "-": _ADD, "**": _POW}
_PREC |= dict.fromkeys(("==", "!=", "<", "<=", ">", ">="), _CMP)
_PREC |= dict.fromkeys(("*", "/", "//", "%"), _MUL)
_LITERALS = {"true": True, "false": False, "null": None, "True": True, "False": False}
_LITERALS["None"] = None
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_ARITH = {"-": operator.sub, "/": operator.truediv, "//": operator.floordiv, "%": operator.mod}


class _EvalError(Exception):
    """An evaluation failure; the node that catches it adds the expression and the column."""


BUILD_FACTOR = 4
"""One evaluation may build, in all, this many times the longest list (``expr_max_items``
items) and the longest string (``expr_max_string`` characters): ``[range(n), range(n),
...]`` builds no list over the limit, but thousands of them."""


def _too_big(what: str, n: int, limit: int, setting: str, unit: str = "items") -> _EvalError:
    return _EvalError(
        f"{what} would have {n:,} {unit}, more than the limit of {limit:,} "
        f"{Limits.setting(setting)}"
    )


class _Meter:
    """What one evaluation has built so far, checked against its limits before each build."""

    __slots__ = ("chars", "items", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits, self.items, self.chars = limits, 0, 0

    def add_items(self, what: str, n: int) -> None:
        """Room for a list of ``n`` items, or _EvalError."""
        most = self.limits.expr_max_items
        if n > most:
            raise _too_big(what, n, most, "expr_max_items")
        self.items += n
        if self.items > BUILD_FACTOR * most:
            raise _EvalError(
                f"the expression would build more than {BUILD_FACTOR * most:,} list items in "
                f"all, {BUILD_FACTOR} times the limit of {most:,} "
                f"{Limits.setting('expr_max_items')}"
            )

    def add_text(self, what: str, n: int) -> None:
        """Room for a string of ``n`` characters, or _EvalError."""
        most = self.limits.expr_max_string
        if n > most:
            raise _too_big(what, n, most, "expr_max_string", "characters")
        self.chars += n
        if self.chars > BUILD_FACTOR * most:
            raise _EvalError(
                f"the expression would build more than {BUILD_FACTOR * most:,} characters of "
                f"text in all, {BUILD_FACTOR} times the limit of {most:,} "
                f"{Limits.setting('expr_max_string')}"
            )


class _Env(NamedTuple):
    source: str
    names: Mapping[str, Any]
    meter: _Meter


# --- values ----------------------------------------------------------------------------


_TYPES = ((bool, "boolean"), (int | float, "number"), (str, "string"), (list | tuple, "list"))


def _type(v: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if v is None:
        return "null"
    if isinstance(v, Mapping):
        return "object"
    return next((name for t, name in _TYPES if isinstance(v, t)), type(v).__name__)


def _a(v: Any) -> str:
    """``a number``, ``an object``, ``null``: the type of ``v`` with its article."""
    name = _type(v)
    return name if name == "null" else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_int(v: Any) -> Any:
    if isinstance(v, int) and v.bit_length() > MAX_INT_BITS:
        raise _EvalError("integer result is too large (more than about 4200 digits)")
    return v


def _eq(a: Any, b: Any) -> bool:
    """JSON equality: values of different types are never equal (true is not 1)."""
    if a is b and not isinstance(a, float):
        return True  # also keeps `[x, x, ...] == [x, x, ...]` from walking x again and again
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
    if isinstance(a, str) and isinstance(b, str):
        return str.__eq__(a, b)
    return a is None and b is None


def _compare(op: str, a: Any, b: Any) -> bool:
    if op in ("==", "!="):
        return _eq(a, b) == (op == "==")
    if op in ("in", "not in"):
        if isinstance(b, str):
            if not isinstance(a, str):
                raise _EvalError(
                    f"'{op}' with a string on the right needs a string on the left, not {_a(a)}"
                )
            found = a in b
        elif isinstance(b, list | tuple):
            found = any(_eq(a, x) for x in b)
        elif isinstance(b, Mapping):
            found = isinstance(a, str) and a in b
        else:
            raise _EvalError(f"'{op}' needs a list, string or object on the right, not {_a(b)}")
        return found == (op == "in")
    if (_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str)):
        return bool(_ORDER[op](a, b))
    raise _EvalError(f"cannot compare {_type(a)} with {_type(b)} using '{op}'")


def _power(a: Any, b: Any) -> Any:
    if abs(b) > MAX_EXPONENT:
        raise _EvalError(f"exponent {b} is too large (the limit is {MAX_EXPONENT} either way)")
    if isinstance(a, int) and isinstance(b, int) and (abs(a).bit_length() - 1) * b > MAX_INT_BITS:
        raise _EvalError("result of '**' is too large (more than about 4200 digits)")
    result = a**b
    if isinstance(result, complex):
        raise _EvalError("a negative number to a fractional power is not a real number")
    return _check_int(result)


def _arith(op: str, a: Any, b: Any, meter: _Meter) -> Any:
    if op == "+":
        if isinstance(a, str) and isinstance(b, str):
            meter.add_text("the string", len(a) + len(b))
            return a + b
        if isinstance(a, list | tuple) and isinstance(b, list | tuple):
            meter.add_items("the list", len(a) + len(b))
            return [*a, *b]
    if not (_is_num(a) and _is_num(b)):
        extra = ""
        if op == "*" and any(isinstance(v, str | list | tuple) for v in (a, b)):
            extra = " (repeating strings or lists is not supported)"
        raise _EvalError(f"cannot apply '{op}' to {_type(a)} and {_type(b)}{extra}")
    if op in ("/", "//", "%") and b == 0:
        raise _EvalError("division by zero")
    if op == "**":
        return _power(a, b)
    if op == "*":
        if (
            isinstance(a, int)
            and isinstance(b, int)
            and a.bit_length() + b.bit_length() > (MAX_INT_BITS + 1)
        ):
            raise _EvalError("integer result is too large (more than about 4200 digits)")
        return _check_int(a * b)
    return _check_int(a + b if op == "+" else _ARITH[op](a, b))


def _format(v: Any, meter: _Meter | None = None) -> str:
    """A value as text: strings as they are, JSON spelling for the rest (compact).

    With a ``meter``, a list or object whose text would be longer than ``expr_max_string``
    is refused before it is written."""
    if meter is not None and isinstance(v, list | tuple | Mapping):
        meter.add_text("the text", jsonvalues.size(v, meter.limits.expr_max_string))
    try:
        if isinstance(v, str):
            return str(v)
        if isinstance(v, bool) or v is None:
            return {True: "true", False: "false", None: "null"}[v]
        if isinstance(v, int):
            return int.__repr__(v)
        if isinstance(v, float):
            return float.__repr__(v)
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        raise _EvalError("the value is too large to write as text") from None
    except TypeError:
        raise _EvalError(f"{_a(v)} cannot be written as text") from None


def _brief(v: Any) -> str:
    try:
        text = _format(v)
    except _EvalError:
        return _a(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _keys(mapping: Mapping[str, Any], missing: str, noun: str) -> str:
    keys = sorted(str(k) for k in mapping)
    if not keys:
        return f" (there are no {noun}s)"
    shown = ", ".join(keys[:20]) + (f", ... ({len(keys) - 20} more)" if len(keys) > 20 else "")
    text = f" ({noun}s: {shown})"
    if close := difflib.get_close_matches(missing, keys, n=1):
        text += f"; did you mean '{close[0]}'?"
    if dashed := [k for k in keys if k.startswith(missing + "-")][:1]:
        text += f"; names with '-' need brackets: ['{dashed[0]}']"
    return text


def _lookup(obj: Any, key: Any, where: str) -> Any:
    if isinstance(obj, Mapping):
        if not isinstance(key, str):
            raise _EvalError(f"'{where}' is an object: index it with a string, not {_a(key)}")
        if key not in obj:
            raise _EvalError(f"'{where}' has no field '{key}'" + _keys(obj, key, "field"))
        return obj[key]
    if isinstance(obj, list | tuple | str):
        if not (isinstance(key, int) and not isinstance(key, bool)):
            what = f"field '{key}'" if isinstance(key, str) else f"index of type {_type(key)}"
            raise _EvalError(f"'{where}' is {_a(obj)}, it has no {what}; use an integer index")
        if not -len(obj) <= key < len(obj):
            raise _EvalError(f"index {key} is out of range: '{where}' has {len(obj)} items")
        return obj[key]
    raise _EvalError(f"'{where}' is {_a(obj)}, it has no fields or items")


# --- functions -------------------------------------------------------------------------


def _num(name: str, v: Any) -> Any:
    if not _is_num(v):
        raise _EvalError(f"{name}() needs a number, not {_a(v)}")
    return v


def _list(name: str, v: Any) -> list[Any]:
    if not isinstance(v, list | tuple):
        raise _EvalError(f"{name}() needs a list, not {_a(v)}")
    return list(v)


def _orderable(name: str, items: list[Any]) -> list[Any]:
    if not (all(_is_num(x) for x in items) or all(isinstance(x, str) for x in items)):
        kinds = ", ".join(sorted({_type(x) for x in items}))
        raise _EvalError(f"{name}() needs all numbers or all strings, got {kinds}")
    return items


def _extreme(name: str, pick: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
    def run(args: list[Any]) -> Any:
        if len(args) == 1 and not isinstance(args[0], list | tuple):
            raise _EvalError(f"{name}() needs a list or several arguments, not {_a(args[0])}")
        items = list(args[0]) if len(args) == 1 else args
        if not items:
            raise _EvalError(f"{name}() of an empty list")
        return pick(_orderable(name, items))

    return run


def _round(args: list[Any]) -> Any:
    if len(args) == 1:
        return round(_num("round", args[0]))
    digits = args[1]
    if not (isinstance(digits, int) and not isinstance(digits, bool)) or abs(digits) > 400:
        raise _EvalError("round() needs a whole number of digits between -400 and 400")
    return round(_num("round", args[0]), digits)


def _int(args: list[Any]) -> Any:
    v = args[0]
    if isinstance(v, str):
        try:
            return _check_int(int(v.strip()))
        except ValueError:
            raise _EvalError(f"int() cannot convert {v[:40]!r} to an integer") from None
    return int(v) if isinstance(v, bool) else _check_int(int(_num("int", v)))


def _float(args: list[Any]) -> Any:
    v = args[0]
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            raise _EvalError(f"float() cannot convert {v[:40]!r} to a number") from None
    return float(v) if isinstance(v, bool) else float(_num("float", v))


def _len(args: list[Any]) -> int:
    if not isinstance(args[0], str | list | tuple | Mapping):
        raise _EvalError(f"len() needs a string, list or object, not {_a(args[0])}")
    return len(args[0])


def _range(args: list[Any], meter: _Meter) -> list[int]:
    """``range(stop)`` / ``range(start, stop[, step])`` as a list, for sweeps; bounded
    by ``expr_max_items``, checked before the list is made."""
    for a in args:
        if not (isinstance(a, int) and not isinstance(a, bool)):
            raise _EvalError(f"range() needs whole numbers, not {_a(a)}")
    if len(args) == 3 and args[2] == 0:
        raise _EvalError("range() step must not be zero")
    r = range(*args)
    meter.add_items("range()", len(r))
    return list(r)


def _sorted(args: list[Any], meter: _Meter) -> list[Any]:
    items = _list("sorted", args[0])
    meter.add_items("sorted()", len(items))  # a new list: counts towards what is built
    return sorted(_orderable("sorted", items))


def _log(args: list[Any]) -> float:
    return math.log(*(_num("log", a) for a in args))


_FUNCTIONS: dict[str, tuple[int, int, Callable[[list[Any]], Any]]] = {
    "abs": (1, 1, lambda a: abs(_num("abs", a[0]))),
    "all": (1, 1, lambda a: all(_list("all", a[0]))),
    "any": (1, 1, lambda a: any(_list("any", a[0]))),
    "bool": (1, 1, lambda a: bool(a[0])),
    "exp": (1, 1, lambda a: math.exp(_num("exp", a[0]))),
    "float": (1, 1, _float),
    "int": (1, 1, _int),
    "len": (1, 1, _len),
    "log": (1, 2, _log),
    "max": (1, -1, _extreme("max", max)),
    "min": (1, -1, _extreme("min", min)),
    "range": (1, 3, lambda a: _range(a, _Meter(DEFAULT))),  # called as a builder
    "round": (1, 2, _round),
    "sorted": (1, 1, lambda a: _sorted(a, _Meter(DEFAULT))),  # called as a builder
    "sqrt": (1, 1, lambda a: math.sqrt(_num("sqrt", a[0]))),
    "str": (1, 1, lambda a: _format(a[0], _Meter(DEFAULT))),  # called as a builder
    "sum": (1, 1, lambda a: _check_int(sum(_num("sum", x) for x in _list("sum", a[0])))),
}


# functions that build values: called with the evaluation's meter instead
_BUILDERS: dict[str, Callable[[list[Any], _Meter], Any]] = {
    "range": _range,
    "sorted": _sorted,
    "str": lambda a, meter: _format(a[0], meter),
}


# --- the syntax tree -------------------------------------------------------------------


class _Node:
    __slots__ = ("pos",)
    pos: int

    def eval(self, env: _Env) -> Any:
        raise NotImplementedError

    def refs(self, out: set[tuple[str, ...]]) -> None:
        """Add the name paths this node reads to ``out``."""


class _Const(_Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: Any) -> None:
        self.pos, self.value = pos, value

    def eval(self, env: _Env) -> Any:
        return self.value


class _List(_Node):
    __slots__ = ("items",)

    def __init__(self, pos: int, items: list[_Node]) -> None:
        self.pos, self.items = pos, items

    def eval(self, env: _Env) -> Any:
        return [item.eval(env) for item in self.items]

    def refs(self, out: set[tuple[str, ...]]) -> None:
        for item in self.items:
            item.refs(out)


class _Name(_Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        self.pos, self.name = pos, name

    def eval(self, env: _Env) -> Any:
        if self.name not in env.names:
            hint = _keys(env.names, self.name, "name")
            raise error_at(env.source, self.pos, f"unknown name '{self.name}'{hint}")
        return env.names[self.name]

    def refs(self, out: set[tuple[str, ...]]) -> None:
        out.add((self.name,))


class _Step(NamedTuple):
    start: int  # the '.' or '['
    pos: int  # the field name or the index expression
    field: str | None
    expr: _Node | None


class _Path(_Node):
    """``base.field[index]...``: one node for the whole chain, so long chains stay flat."""

    __slots__ = ("base", "steps")

    def __init__(self, pos: int, base: _Node, steps: list[_Step]) -> None:
        self.pos, self.base, self.steps = pos, base, steps

    def eval(self, env: _Env) -> Any:
        value = self.base.eval(env)
        for step in self.steps:
            key = step.field if step.expr is None else step.expr.eval(env)
            try:
                value = _lookup(value, key, env.source[self.pos : step.start].strip())
            except _EvalError as exc:
                raise error_at(env.source, step.pos, str(exc)) from None
        return value

    def refs(self, out: set[tuple[str, ...]]) -> None:
        path: list[str] | None = None
        if isinstance(self.base, _Name):
            path = [self.base.name]
        else:
            self.base.refs(out)
        for step in self.steps:
            key = step.field
            if isinstance(step.expr, _Const) and isinstance(step.expr.value, str):
                key = step.expr.value
            if path is not None and key is None:
                out.add(tuple(path))
                path = None
            elif path is not None and key is not None:
                path.append(key)
            if step.expr is not None:
                step.expr.refs(out)
        if path is not None:
            out.add(tuple(path))


class _Call(_Node):
    __slots__ = ("args", "name")

    def __init__(self, pos: int, name: str, args: list[_Node]) -> None:
        self.pos, self.name, self.args = pos, name, args

    def eval(self, env: _Env) -> Any:
        args = [arg.eval(env) for arg in self.args]
        try:
            builder = _BUILDERS.get(self.name)
            if builder is not None:
                return builder(args, env.meter)
            return _FUNCTIONS[self.name][2](args)
        except _EvalError as exc:
            raise error_at(env.source, self.pos, str(exc)) from None
        except OverflowError:
            raise error_at(env.source, self.pos, f"{self.name}() result is too large") from None
        except (ArithmeticError, ValueError):
            shown = ", ".join(_brief(a) for a in args)
            msg = f"{self.name}() is not defined for {shown}"
            raise error_at(env.source, self.pos, msg) from None

    def refs(self, out: set[tuple[str, ...]]) -> None:
        for arg in self.args:
            arg.refs(out)


class _Unary(_Node):
    __slots__ = ("op", "operand")

    def __init__(self, pos: int, op: str, operand: _Node) -> None:
        self.pos, self.op, self.operand = pos, op, operand

    def eval(self, env: _Env) -> Any:
        value = self.operand.eval(env)
        if self.op == "not":
            return not value
        if not _is_num(value):
            msg = f"cannot apply unary '{self.op}' to {_type(value)}"
            raise error_at(env.source, self.pos, msg)
        return -value if self.op == "-" else value

    def refs(self, out: set[tuple[str, ...]]) -> None:
        self.operand.refs(out)


class _Chain(_Node):
    """``a op b op c ...`` for operators of one precedence: or, and, comparisons, + -, * / ..."""

    __slots__ = ("first", "prec", "rest")

    def __init__(self, prec: int, first: _Node, rest: list[tuple[str, int, _Node]]) -> None:
        self.pos, self.prec, self.first, self.rest = first.pos, prec, first, rest

    def eval(self, env: _Env) -> Any:
        if self.prec in (_OR, _AND):
            stop = self.prec == _OR  # the truth value that decides the result
            operands = [self.first, *(node for _, _, node in self.rest)]
            return next((stop for node in operands if bool(node.eval(env)) == stop), not stop)
        left = self.first.eval(env)
        for op, pos, node in self.rest:
            right = node.eval(env)
            try:
                if self.prec == _CMP:
                    if not _compare(op, left, right):
                        return False
                    left = right
                else:
                    left = _arith(op, left, right, env.meter)
            except _EvalError as exc:
                raise error_at(env.source, pos, str(exc)) from None
            except ZeroDivisionError:
                raise error_at(env.source, pos, "division by zero") from None
            except OverflowError:
                raise error_at(env.source, pos, f"result of '{op}' is too large") from None
        return True if self.prec == _CMP else left

    def refs(self, out: set[tuple[str, ...]]) -> None:
        self.first.refs(out)
        for _, _, node in self.rest:
            node.refs(out)


# --- the parser ------------------------------------------------------------------------


class _Parser:
    """Precedence climbing over the tokens; ``_expr`` is the only recursive entry point."""

    def __init__(self, text: str) -> None:
        self.text, self.tokens, self.i, self.depth = text, tokenize(text), 0, -1

    def error(self, tok: Token, message: str) -> ExpressionError:
        return error_at(self.text, tok.pos, message)

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += tok.kind != "end"
        return tok

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def expect(self, text: str, opening: Token) -> None:
        tok = self.take()
        if tok.text != text or tok.kind != "op":
            col = opening.pos + 1
            msg = f"expected '{text}' to close the '{opening.text}' at column {col}"
            raise self.error(tok, f"{msg}, found {describe(tok)}")

    def parse(self) -> _Node:
        if self.peek().kind == "end":
            raise self.error(self.peek(), "empty expression")
        node = self._expr(0)
        tok = self.peek()
        if tok.kind != "end":
            if tok.text in (")", "]"):
                raise self.error(tok, f"unmatched '{tok.text}'")
            what = f"unexpected {describe(tok)}"
            raise self.error(tok, f"{what}; expected an operator or the end of the expression")
        return node

    def _binop(self) -> str | None:
        tok = self.peek()
        if tok.kind == "kw" and tok.text == "not":
            after = self.peek(1)
            return "not in" if after.kind == "kw" and after.text == "in" else None
        if tok.kind in ("op", "kw") and tok.text in _PREC:
            return tok.text
        return None

    def _expr(self, min_prec: int) -> _Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(self.peek(), f"expression is nested too deeply (limit {MAX_DEPTH})")
        lhs, built = self._prefix(min_prec), False
        while (op := self._binop()) is not None and _PREC[op] >= min_prec:
            prec, tok = _PREC[op], self.take()
            if op == "not in":
                self.take()
            rhs = self._expr(_UNARY if op == "**" else prec + 1)
            if built and isinstance(lhs, _Chain) and lhs.prec == prec and op != "**":
                lhs.rest.append((op, tok.pos, rhs))
            else:
                lhs, built = _Chain(prec, lhs, [(op, tok.pos, rhs)]), True
        self.depth -= 1
        return lhs

    def _prefix(self, min_prec: int) -> _Node:
        tok = self.peek()
        if tok.kind == "kw" and tok.text == "not":
            if min_prec > _NOT:
                raise self.error(tok, "'not' cannot appear here without parentheses")
            self.take()
            return _Unary(tok.pos, "not", self._expr(_NOT))
        if tok.kind == "op" and tok.text in ("-", "+"):
            self.take()
            return _Unary(tok.pos, tok.text, self._expr(_UNARY))
        return self._postfix()

    def _postfix(self) -> _Node:
        start = self.peek().pos
        node = self._primary()
        steps: list[_Step] = []
        while (tok := self.peek()).kind == "op" and tok.text in (".", "[", "("):
            self.take()
            if tok.text == "(":
                raise self.error(tok, "only built-in functions can be called, like len(x)")
            if tok.text == "[":
                index = self._expr(0)
                self.expect("]", tok)
                steps.append(_Step(tok.pos, index.pos, None, index))
                continue
            name = self.take()
            if name.kind not in ("name", "kw"):
                raise self.error(name, f"expected a field name after '.', found {describe(name)}")
            steps.append(_Step(tok.pos, name.pos, name.text, None))
        return _Path(start, node, steps) if steps else node

    def _items(self, opening: Token, closing: str) -> list[_Node]:
        items: list[_Node] = []
        while not (self.peek().kind == "op" and self.peek().text == closing):
            items.append(self._expr(0))
            if not (self.peek().kind == "op" and self.peek().text == ","):
                break
            self.take()
        self.expect(closing, opening)
        return items

    def _primary(self) -> _Node:
        tok = self.take()
        if tok.kind in ("num", "str"):
            return _Const(tok.pos, tok.value)
        if tok.kind == "name" and tok.text in _LITERALS:
            return _Const(tok.pos, _LITERALS[tok.text])
        is_call = self.peek().kind == "op" and self.peek().text == "("
        if tok.kind == "name" and not is_call:
            return _Name(tok.pos, tok.text)
        if tok.kind == "name":
            if tok.text not in _FUNCTIONS:
                known = ", ".join(sorted(_FUNCTIONS))
                raise self.error(tok, f"unknown function '{tok.text}'; available: {known}")
            args = self._items(self.take(), ")")
            lo, hi, _ = _FUNCTIONS[tok.text]
            if len(args) < lo or 0 <= hi < len(args):
                want = str(lo) if lo == hi else f"at least {lo}" if hi < 0 else f"{lo} to {hi}"
                noun = "argument" if (hi if hi >= 0 else lo) == 1 else "arguments"
                msg = f"{tok.text}() takes {want} {noun} ({len(args)} given)"
                raise self.error(tok, msg)
            return _Call(tok.pos, tok.text, args)
        if tok.kind == "op" and tok.text == "(":
            node = self._expr(0)
            self.expect(")", tok)
            return node
        if tok.kind == "op" and tok.text == "[":
            return _List(tok.pos, self._items(tok, "]"))
        prev = self.tokens.index(tok) - 1
        after = f" after {describe(self.tokens[prev])}" if prev >= 0 else ""
        raise self.error(tok, f"expected a value{after}, found {describe(tok)}")


# --- the public API --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expr:
    """A parsed expression: immutable, reusable, and safe to evaluate on untrusted text."""

    source: str
    _node: _Node = field(repr=False, compare=False)
    _refs: frozenset[tuple[str, ...]] = field(repr=False, compare=False)

    def evaluate(self, context: Mapping[str, Any], limits: Limits = DEFAULT) -> Any:
        """The value of the expression, with names looked up in ``context``; no list,
        string or whole value it builds may pass ``limits``."""
        try:
            value = self._node.eval(_Env(self.source, context, _Meter(limits)))
        except RecursionError:
            raise error_at(self.source, 0, "expression is nested too deeply") from None
        cap = limits.expr_max_bytes
        n, finite = jsonvalues.measure(value, cap)  # one walk, stopped at the limit
        if n > cap:
            msg = (
                f"the value would take more than the limit of {cap:,} bytes as JSON "
                f"{Limits.setting('expr_max_bytes')}"
            )
            raise error_at(self.source, 0, msg)
        if not finite:
            raise error_at(
                self.source,
                0,
                "the result is not a finite number (NaN or infinity), which JSON cannot hold",
            )
        return value

    def references(self) -> frozenset[tuple[str, ...]]:
        """Every name path the expression reads, up to its first non-literal index.

        ``works.fit.outputs.chi2 < x`` gives ``{('works','fit','outputs','chi2'), ('x',)}``;
        ``works.fit.results[0].x`` gives ``{('works','fit','results')}``; a string index
        counts as a field: ``works['fit-1'].status`` gives ``{('works','fit-1','status')}``.
        """
        return self._refs


def parse(text: str) -> Expr:
    """Parse ``text``; raise ExpressionError, with the column and what was expected, if bad."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be a string, not {_a(text)}")
    return _parse(text)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Expr:
    if len(text) > MAX_LENGTH:
        msg = f"expression is too long ({len(text)} characters; the limit is {MAX_LENGTH})"
        raise ExpressionError(f"{msg}: {text[:60]}...")
    try:
        node = _Parser(text).parse()
    except RecursionError:
        raise error_at(text, 0, "expression is nested too deeply") from None
    refs: set[tuple[str, ...]] = set()
    node.refs(refs)
    return Expr(text, node, frozenset(refs))


def evaluate(
    text: str, context: Mapping[str, Any], limits: Limits = DEFAULT, where: str | None = None
) -> Any:
    """Parse and evaluate ``text`` in one go (parsing is cached). ``where`` names the field
    that holds it (``loops[0](fit).next.x``): errors start with it and carry it as ``field``."""
    try:
        return parse(text).evaluate(context, limits)
    except ExpressionError as exc:
        raise _at(where, exc) from None


def _at(where: str | None, exc: ExpressionError) -> ExpressionError:
    """``exc`` with the field it happened in (when known) in front of the message."""
    if where is None:
        return exc
    return ExpressionError(f"{where}: {exc}", field=where)


@functools.lru_cache(maxsize=4096)
def _segments(text: str) -> tuple[str | Expr, ...]:
    """``text`` split into literal pieces and ``${...}`` expressions; ``$${`` is a literal."""
    parts: list[str | Expr] = []
    buf: list[str] = []
    i = 0
    while (j := text.find("$", i)) >= 0:
        buf.append(text[i:j])
        if text.startswith("$${", j):
            buf.append("${")
            i = j + 3
        elif text.startswith("${", j):
            end = find_binding_end(text, j + 2)
            if end < 0:
                raise error_at(text, j, "unterminated '${': add the closing '}'")
            if literal := "".join(buf):
                parts.append(literal)
            buf = []
            parts.append(parse(text[j + 2 : end]))
            i = end + 1
        else:
            buf.append("$")
            i = j + 1
    if literal := "".join(buf) + text[i:]:
        parts.append(literal)
    return tuple(parts)


def find_bindings(value: Any) -> list[Expr]:
    """Every ``${...}`` expression inside a JSON value, in document order (dict keys skipped).

    Raises ExpressionError for an unterminated ``${`` or an expression that does not parse.
    """
    if isinstance(value, str):
        return [p for p in _segments(value) if isinstance(p, Expr)] if "$" in value else []
    if isinstance(value, Mapping):
        return [e for v in value.values() for e in find_bindings(v)]
    if isinstance(value, list | tuple):
        return [e for v in value for e in find_bindings(v)]
    return []


def interpolate(
    value: Any, context: Mapping[str, Any], limits: Limits = DEFAULT, where: str | None = None
) -> Any:
    """A copy of a JSON value with every ``${expr}`` replaced by its value.

    A string that is exactly one ``${expr}`` becomes the value itself, JSON type kept;
    an expression inside longer text is written as text (``null``, ``true``, compact JSON).
    ``$${`` stands for a literal ``${``. Dict keys are not interpolated. Nothing built may
    pass ``limits``. ``where`` is the path of ``value`` in the template
    (``works[0](sim).parameters``): an error names the field below it that failed
    (``works[0](sim).parameters.x``), in its message and as its ``field``.
    """
    return _interpolate(value, context, limits, where)


def _interpolate(value: Any, context: Mapping[str, Any], limits: Limits, where: str | None) -> Any:
    if isinstance(value, str):
        if "$" not in value:
            return value
        try:
            return _interpolate_text(value, context, limits)
        except ExpressionError as exc:
            raise _at(where, exc) from None
    if isinstance(value, Mapping):
        return {
            k: _interpolate(v, context, limits, None if where is None else f"{where}.{k}")
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [
            _interpolate(v, context, limits, None if where is None else f"{where}[{i}]")
            for i, v in enumerate(value)
        ]
    return value


def _interpolate_text(value: str, context: Mapping[str, Any], limits: Limits) -> Any:
    parts = _segments(value)
    if len(parts) == 1 and isinstance(parts[0], Expr):
        return copy.deepcopy(parts[0].evaluate(context, limits))
    out: list[str] = []
    length, most = 0, limits.expr_max_string
    for part in parts:
        if isinstance(part, str):
            text = part
        else:
            try:
                text = _format(part.evaluate(context, limits), _Meter(limits))
                if length + len(text) > most:  # the text as a whole, literal parts too
                    raise _too_big(
                        "the text", length + len(text), most, "expr_max_string", "characters"
                    )
            except _EvalError as exc:
                raise error_at(part.source, 0, str(exc)) from None
        length += len(text)
        out.append(text)
    return "".join(out)
