"""The expression language: syntax, semantics, errors, references, bindings."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchid.core.expr import Expr, evaluate, find_bindings, interpolate, parse
from orchid.errors import ExpressionError, InvalidInput

CTX: dict[str, Any] = {
    "works": {
        "fit": {
            "status": "succeeded",
            "outputs": {"chi2": 1.2, "ndf": 3, "best": [0.1, 0.2]},
            "results": [{"x": 1}, {"x": 2}],
        },
        "fit-1": {"status": "failed"},
    },
    "x": 0.5,
    "n": 7,
    "s": "hello",
    "items": [3, 1, 2],
    "empty": [],
    "flag": True,
    "none": None,
    "many": {f"k{i:02d}": i for i in range(30)},
}


def ev(text: str, **extra: Any) -> Any:
    return evaluate(text, {**CTX, **extra})


def error_of(text: str, **extra: Any) -> str:
    with pytest.raises(ExpressionError) as info:
        ev(text, **extra)
    return str(info.value)


# --- literals, names, access ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        ("1.5", 1.5),
        ("1e-6", 1e-6),
        (".5", 0.5),
        ("2E3", 2000.0),
        ("1.", 1.0),
        ("'single'", "single"),
        ('"double"', "double"),
        (r"'it\'s'", "it's"),
        (r'"a\"b"', 'a"b'),
        (r"'tab\there\nline\\'", "tab\there\nline\\"),
        (r"'\u00e9'", "é"),
        ("'}'", "}"),
        ("true", True),
        ("false", False),
        ("null", None),
        ("True", True),
        ("False", False),
        ("None", None),
        ("[]", []),
        ("[1, 'a', [null, true]]", [1, "a", [None, True]]),
        ("[1, 2,]", [1, 2]),
        ("[n, x]", [7, 0.5]),
    ],
)
def test_literals(text: str, expected: Any) -> None:
    result = ev(text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("works.fit.status", "succeeded"),
        ("works.fit.outputs.best[1]", 0.2),
        ("works.fit.results[-1].x", 2),
        ("works.fit.results[-2]['x']", 1),
        ("works['fit-1'].status", "failed"),
        ("works['fit'][\"status\"]", "succeeded"),
        ("items[n - 6]", 1),
        ("s[0]", "h"),
        ("[10, 20][1]", 20),
        ("(works.fit).status", "succeeded"),
        ("sorted(items)[0]", 1),
        ("works.fit.outputs.ndf", 3),
        ("many.k29", 29),
    ],
)
def test_names_fields_and_indexes(text: str, expected: Any) -> None:
    assert ev(text) == expected


def test_keywords_may_be_field_names() -> None:
    assert evaluate("a.in.not", {"a": {"in": {"not": 1}}}) == 1


# --- operators -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("2 * 3 % 4", 2),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("-7 % 3", 2),
        ("7.5 % 2", 1.5),
        ("1 / 4", 0.25),
        ("4 / 2", 2.0),
        ("2 ** 3 ** 2", 512),
        ("-2 ** 2", -4),
        ("(-2) ** 2", 4),
        ("2 ** -1", 0.5),
        ("2 ** -1 * 3", 1.5),
        ("- - 3", 3),
        ("+3", 3),
        ("-x", -0.5),
        ("1 + -2", -1),
        ("'a' + 'b'", "ab"),
        ("[1] + [2, 3]", [1, 2, 3]),
        ("1 + 2.5", 3.5),
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 2", True),
        ("2 >= 3", False),
        ("'abc' < 'abd'", True),
        ("1 == 1.0", True),
        ("1 != 2", True),
        ("1 == '1'", False),
        ("true == 1", False),
        ("false == 0", False),
        ("null == null", True),
        ("null == 0", False),
        ("[1, [2]] == [1, [2]]", True),
        ("[1, 2] == [1, true]", False),
        ("works.fit.outputs == works.fit.outputs", True),
        ("works.fit == works['fit-1']", False),
        ("1 in [1, 2]", True),
        ("1.0 in [1, 2]", True),
        ("true in [1]", False),
        ("3 not in [1, 2]", True),
        ("'ell' in s", True),
        ("'z' not in s", True),
        ("'fit' in works", True),
        ("1 in works", False),
        ("0 < x < 1", True),
        ("0 < x < 0.2", False),
        ("1 < 3 > 2 == 2", True),
        ("1 + 1 == 2 and 3 > 2", True),
        ("not 1 == 2", True),
        ("not 1 in [1]", False),
        ("not not []", False),
        ("1 and 2", True),
        ("0 or ''", False),
        ("[] or 'x'", True),
        ("null or 0 or [0]", True),
        ("true or false and false", True),
        ("(true or false) and false", False),
        ("not true or true", True),
        ("not (true or true)", False),
        ("not empty and n > 3", True),
    ],
)
def test_operators_and_precedence(text: str, expected: Any) -> None:
    result = ev(text)
    assert result == expected
    assert type(result) is type(expected)


def test_and_or_short_circuit() -> None:
    assert ev("false and undefined_name") is False
    assert ev("true or undefined_name.field[0]") is True
    assert ev("1 > 2 < undefined_name") is False
    assert ev("flag and n > 5") is True
    with pytest.raises(ExpressionError, match="unknown name 'undefined_name'"):
        ev("true and undefined_name")


# --- functions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("len('abc')", 3),
        ("len(items)", 3),
        ("len(works)", 2),
        ("min(items)", 1),
        ("min(4, 2, 8)", 2),
        ("max(items)", 3),
        ("max(1, 2.5)", 2.5),
        ("max(['b', 'a'])", "b"),
        ("sum(items)", 6),
        ("sum([0.5, 1])", 1.5),
        ("sum([])", 0),
        ("abs(-3)", 3),
        ("abs(-2.5)", 2.5),
        ("round(2.567)", 3),
        ("round(2.567, 2)", 2.57),
        ("round(1234, -2)", 1200),
        ("any([0, '', 1])", True),
        ("any([])", False),
        ("all([1, 'a'])", True),
        ("all([1, null])", False),
        ("int(3.9)", 3),
        ("int(' 42 ')", 42),
        ("int(true)", 1),
        ("float('1.5')", 1.5),
        ("float(2)", 2.0),
        ("float(false)", 0.0),
        ("str(1.5)", "1.5"),
        ("str(null)", "null"),
        ("str(true)", "true"),
        ("str([1, 'a'])", '[1,"a"]'),
        ("str('x')", "x"),
        ("bool([])", False),
        ("bool('a')", True),
        ("sorted(items)", [1, 2, 3]),
        ("sorted(['b', 'a'])", ["a", "b"]),
        ("sqrt(16)", 4.0),
        ("log(1)", 0.0),
        ("log(8, 2)", 3.0),
        ("exp(0)", 1.0),
    ],
)
def test_functions(text: str, expected: Any) -> None:
    result = ev(text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("len(1)", "len() needs a string, list or object, not a number"),
        ("min([])", "min() of an empty list"),
        ("max(1)", "max() needs a list or several arguments, not a number"),
        ("min([1, 'a'])", "min() needs all numbers or all strings, got number, string"),
        ("sum(['a'])", "sum() needs a number, not a string"),
        ("abs('a')", "abs() needs a number, not a string"),
        ("any(1)", "any() needs a list, not a number"),
        ("round(1.5, 1.5)", "round() needs a whole number of digits"),
        ("round(1, -100000)", "between -400 and 400"),
        ("int('x1')", "int() cannot convert 'x1' to an integer"),
        ("float('abc')", "float() cannot convert 'abc' to a number"),
        ("int(null)", "int() needs a number, not null"),
        ("sqrt(-1)", "sqrt() is not defined for -1"),
        ("log(0)", "log() is not defined for 0"),
        ("log(-huge)", "log() is not defined for a number"),
        ("log(2, 1)", "log() is not defined for 2, 1"),
        ("round(float('nan'))", "round() is not defined for nan"),
        ("exp(1000)", "exp() result is too large"),
        ("int(float('inf'))", "int() result is too large"),
        ("float(huge)", "float() result is too large"),
        ("len()", "len() takes 1 argument (0 given)"),
        ("round(1, 2, 3)", "round() takes 1 to 2 arguments (3 given)"),
        ("min()", "min() takes at least 1 argument (0 given)"),
    ],
)
def test_function_errors(text: str, message: str) -> None:
    assert message in error_of(text, huge=10**5000)


def test_unknown_function_lists_the_available_ones() -> None:
    msg = error_of("foo(1)")
    assert "unknown function 'foo'; available: abs, all, any, bool" in msg
    assert "(at column 1)" in msg


@pytest.mark.parametrize("text", ["a.b(1)", "(len)(x)", "1(2)"])
def test_only_builtin_functions_can_be_called(text: str) -> None:
    assert "only built-in functions can be called" in error_of(text, a={"b": 1}, len=1)


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("", "empty expression", 1),
        ("   ", "empty expression", 4),
        ("a and", "expected a value after 'and', found end of expression", 6),
        ("1 + * 2", "expected a value after '+', found '*'", 5),
        ("(1 + 2", "expected ')' to close the '(' at column 1, found end of expression", 7),
        ("[1, 2", "expected ']' to close the '[' at column 1", 6),
        ("a b", "unexpected name 'b'; expected an operator or the end of the expression", 3),
        ("1 + 2)", "unmatched ')'", 6),
        ("a.", "expected a field name after '.', found end of expression", 3),
        ("a.1", "unexpected number .1", 2),
        ("'abc", "unterminated string: add the closing '", 1),
        (r"'a\qb'", r"unknown escape '\q' in string", 3),
        ("a = 1", "unexpected character '='; use '==' to compare", 3),
        ("a && b", "unexpected character '&'; use 'and'", 3),
        ("a || b", "use 'or'", 3),
        ("!a", "use 'not'", 1),
        ("${a}", "'${...}' is for template strings", 1),
        ("{}", "objects cannot be written in expressions", 1),
        ("12abc", "invalid number '12abc'", 1),
        ("1e999", "number 1e999 is out of range", 1),
        ("1 + not x", "'not' cannot appear here without parentheses", 5),
        ("a not b", "unexpected 'not'", 3),
        ("é", "unexpected character 'é'", 1),
    ],
)
def test_syntax_errors(text: str, message: str, column: int) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    msg = str(info.value)
    assert message in msg
    assert f"(at column {column})" in msg
    _, snippet, caret = msg.splitlines()
    assert snippet.strip() == text.strip() or not text.strip()
    assert caret.index("^") - 4 == column - 1  # the caret sits under the column


def test_errors_are_invalid_input() -> None:
    assert issubclass(ExpressionError, InvalidInput)


def test_error_in_a_multi_line_expression_names_the_line() -> None:
    msg = error_of("n > 1 and\n  s * 2")
    assert "(at line 2, column 5)" in msg
    assert "\n      s * 2\n        ^" in msg


def test_caret_window_of_a_long_expression() -> None:
    text = "1 + " * 100 + "'a'"
    msg = error_of(text)
    first, snippet, caret = msg.splitlines()
    assert "cannot apply '+' to number and string" in first
    assert snippet.startswith("    ...") and len(snippet) < 120
    assert snippet[caret.index("^")] == "+"


def test_unknown_name_lists_available_names() -> None:
    msg = error_of("wroks.fit")
    assert "unknown name 'wroks'" in msg
    assert "did you mean 'works'?" in msg
    assert "names: " in msg and "works" in msg and "x" in msg
    assert "(at column 1)" in msg


def test_missing_field_names_the_path_and_the_fields() -> None:
    msg = error_of("works.fit.outputs.chi3 < 1")
    assert "'works.fit.outputs' has no field 'chi3' (fields: best, chi2, ndf)" in msg
    assert "did you mean 'chi2'?" in msg
    assert "(at column 19)" in msg
    assert "'works.fit.outputs' has no field 'zz'" in error_of("works.fit.outputs['zz']")


def test_long_key_lists_are_truncated() -> None:
    msg = error_of("many.nope")
    assert "k00, k01" in msg
    assert "k19, ... (10 more)" in msg
    assert "k29" not in msg


def test_dashed_names_get_a_hint() -> None:
    msg = error_of("works.fit-1.status", works={"fit-1": {}})
    assert "names with '-' need brackets: ['fit-1']" in msg


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("works.fit.results[5]", "index 5 is out of range: 'works.fit.results' has 2 items"),
        ("items[-4]", "index -4 is out of range"),
        ("works[0]", "'works' is an object: index it with a string, not a number"),
        ("items['a']", "'items' is a list, it has no field 'a'; use an integer index"),
        ("items[true]", "has no index of type boolean"),
        ("n.x", "'n' is a number, it has no fields or items"),
        ("none.x", "'none' is null, it has no fields or items"),
        ("s < 1", "cannot compare string with number using '<'"),
        ("null > 1", "cannot compare null with number"),
        ("[1] < [2]", "cannot compare list with list"),
        ("1 in 5", "'in' needs a list, string or object on the right, not a number"),
        ("1 in s", "'in' with a string on the right needs a string on the left"),
        ("1 / 0", "division by zero"),
        ("1 // 0.0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("true + 1", "cannot apply '+' to boolean and number"),
        ("1 - true", "cannot apply '-' to number and boolean"),
        ("'a' + 1", "cannot apply '+' to string and number"),
        ("[1] + 'a'", "cannot apply '+' to list and string"),
        ("'ab' * 3", "repeating strings or lists is not supported"),
        ("3 * [1]", "repeating strings or lists is not supported"),
        ("-s", "cannot apply unary '-' to string"),
        ("2 ** 10001", "exponent 10001 is too large"),
        ("2 ** -20000", "exponent -20000 is too large"),
        ("10 ** 5000", "result of '**' is too large"),
        ("(10 ** 3000) * (10 ** 3000)", "integer result is too large"),
        ("(-8) ** 0.5", "is not a real number"),
        ("10.0 ** 400", "result of '**' is too large"),
    ],
)
def test_evaluation_errors(text: str, message: str) -> None:
    msg = error_of(text)
    assert message in msg
    assert "(at column " in msg and text in msg


def test_error_column_points_at_the_operator() -> None:
    assert "(at column 7)" in error_of("1 + 2 / 0")


def test_length_limit() -> None:
    assert ev("1" + " " * 9_999) == 1
    with pytest.raises(ExpressionError, match=r"too long \(10001 characters; the limit is 10000"):
        parse("1" + " " * 10_000)


def test_depth_limit() -> None:
    assert ev("(" * 100 + "1" + ")" * 100) == 1
    assert ev("[" * 100 + "]" * 100) is not None
    assert ev("-" * 100 + "1") == 1
    assert ev("not " * 99 + "1") is False
    for text in ["(" * 101 + "1" + ")" * 101, "-" * 101 + "1", "2**" * 101 + "1", "[" * 5000]:
        with pytest.raises(ExpressionError, match="nested too deeply"):
            parse(text)


def test_long_flat_chains_do_not_recurse() -> None:
    assert ev(" and ".join(["true"] * 1000)) is True
    assert ev("+".join(["1"] * 4000)) == 4000
    assert ev("works" + ".fit" * 1, works={"fit": 1}) == 1
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(1500):
        node["a"] = {}
        node = node["a"]
    assert ev("d" + ".a" * 1500, d=deep) == {}


def test_non_string_expression() -> None:
    with pytest.raises(ExpressionError, match="must be a string, not a number"):
        parse(1)  # type: ignore[arg-type]


# --- the Expr object -----------------------------------------------------------------


def test_parse_is_cached_and_expr_is_immutable() -> None:
    expr = parse("n + 1")
    assert parse("n + 1") is expr
    assert isinstance(expr, Expr)
    assert expr.source == "n + 1"
    assert expr.evaluate({"n": 1}) == 2
    assert expr.evaluate({"n": 41}) == 42
    with pytest.raises(dataclasses.FrozenInstanceError):
        expr.source = "x"  # type: ignore[misc]
    assert "n + 1" in repr(expr)


@pytest.mark.parametrize(
    ("text", "refs"),
    [
        (
            "works.fit.outputs.chi2 < x",
            {("works", "fit", "outputs", "chi2"), ("x",)},
        ),
        ("works.fit.results[0].x", {("works", "fit", "results")}),
        ("works['fit-1'].status", {("works", "fit-1", "status")}),
        ("a[b.c].d", {("a",), ("b", "c")}),
        ("len(a.b) + max(c, 1)", {("a", "b"), ("c",)}),
        ("[p.q, r] == s", {("p", "q"), ("r",), ("s",)}),
        ("sorted(a)[0].x", {("a",)}),
        ("(a).b", {("a", "b")}),
        ("(a + b).c", {("a",), ("b",)}),
        ("true and null == 1", set()),
        ("not a or -b", {("a",), ("b",)}),
        ("a[-1]", {("a",)}),
    ],
)
def test_references(text: str, refs: set[tuple[str, ...]]) -> None:
    assert parse(text).references() == frozenset(refs)


# --- bindings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${n}", 7),
        ("${x}", 0.5),
        ("${works.fit.outputs.best}", [0.1, 0.2]),
        ("${works.fit.outputs}", {"chi2": 1.2, "ndf": 3, "best": [0.1, 0.2]}),
        ("${flag}", True),
        ("${none}", None),
        ("${s}", "hello"),
        ("${n * 2 > 10}", True),
        ("${'}'}", "}"),
        ("${ n }", 7),
    ],
)
def test_whole_string_binding_keeps_the_type(value: str, expected: Any) -> None:
    result = interpolate(value, CTX)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("n=${n}", "n=7"),
        ("x=${x}, tiny=${1e-6}, big=${1e20}", "x=0.5, tiny=1e-06, big=1e+20"),
        ("${n}${n}", "77"),
        (" ${n}", " 7"),
        ("${n} ", "7 "),
        ("best: ${works.fit.outputs.best}", "best: [0.1,0.2]"),
        ("d=${works['fit-1']}", 'd={"status":"failed"}'),
        ("${none}|${flag}|${false}", "null|true|false"),
        ("s=${s}!", "s=hello!"),
        ("cost $5 and $${literal}", "cost $5 and ${literal}"),
        ("$${n}", "${n}"),
        ("$$${n}", "$${n}"),  # a lone "$" stays, then "$${" is the escape
        ("$", "$"),
        ("no bindings", "no bindings"),
        ("q=${'a}b' + s}", "q=a}bhello"),
        ("u=${'é'}", "u=é"),
    ],
)
def test_embedded_bindings_are_formatted_as_text(value: str, expected: str) -> None:
    assert interpolate(value, CTX) == expected


def test_interpolate_nested_values() -> None:
    value: dict[str, Any] = {
        "args": ["--n", "${n}", {"deep": "${works.fit.outputs.best}", "${n}": "key"}],
        "label": "run-${n}",
        "count": 3,
        "ok": True,
        "nothing": None,
        "t": ("${x}",),
    }
    assert interpolate(value, CTX) == {
        "args": ["--n", 7, {"deep": [0.1, 0.2], "${n}": "key"}],
        "label": "run-7",
        "count": 3,
        "ok": True,
        "nothing": None,
        "t": [0.5],
    }
    assert value["args"][1] == "${n}"  # the input is left alone


def test_interpolate_returns_copies() -> None:
    result = interpolate("${works.fit.outputs.best}", CTX)
    result.append(99)
    assert CTX["works"]["fit"]["outputs"]["best"] == [0.1, 0.2]


def test_interpolate_errors() -> None:
    with pytest.raises(ExpressionError, match=r"unterminated '\$\{': add the closing '\}'"):
        interpolate("a ${n + 1", CTX)
    with pytest.raises(ExpressionError, match=r"unterminated"):
        interpolate("${'}", CTX)
    with pytest.raises(ExpressionError, match="empty expression"):
        interpolate("${}", CTX)
    with pytest.raises(ExpressionError, match="unknown name 'nope'"):
        interpolate({"a": ["v=${nope}"]}, CTX)
    with pytest.raises(ExpressionError, match="too large to write as text"):
        interpolate("v=${big}", {"big": 10**5000})


def test_find_bindings() -> None:
    value = {"a": ["${n}", {"k": "x ${s + '}'} ${x}"}], "${key}": "$${no}", "b": 5}
    assert [e.source for e in find_bindings(value)] == ["n", "s + '}'", "x"]
    assert find_bindings("plain") == []
    assert find_bindings(3) == []
    assert find_bindings(["${works.fit.status}"])[0].references() == {("works", "fit", "status")}
    with pytest.raises(ExpressionError, match="unterminated"):
        find_bindings({"a": "${oops"})
    with pytest.raises(ExpressionError, match="expected a value after '\\+'"):
        find_bindings(["${1 +}"])


# --- properties ----------------------------------------------------------------------

_OPS = ["+", "-", "*", "/", "//", "%"]
_numbers = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)


@st.composite
def _arith_tree(draw: st.DrawFn, depth: int = 0) -> tuple[str, Any]:
    """A random arithmetic expression, fully parenthesized, and its Python value."""
    if depth >= 4 or draw(st.booleans()):
        value = draw(_numbers)
        return f"({value!r})", value
    op = draw(st.sampled_from([*_OPS, "**"]))
    left_text, left = draw(_arith_tree(depth + 1))
    if op == "**":
        exponent = draw(st.integers(-3, 3))
        return f"({left_text} ** {exponent})", _py(lambda: left**exponent)
    right_text, right = draw(_arith_tree(depth + 1))
    funcs = {
        "+": lambda: left + right,
        "-": lambda: left - right,
        "*": lambda: left * right,
        "/": lambda: left / right,
        "//": lambda: left // right,
        "%": lambda: left % right,
    }
    return f"({left_text} {op} {right_text})", _py(funcs[op])


class _Error:
    """Python raised: the expression must raise ExpressionError too."""


def _py(compute: Any) -> Any:
    try:
        result = compute()
    except (ArithmeticError, TypeError):  # TypeError: an operand was already an error
        return _Error()
    return _Error() if isinstance(result, complex) else result


@settings(max_examples=150, deadline=None)
@given(_arith_tree())
def test_arithmetic_matches_python(tree: tuple[str, Any]) -> None:
    text, expected = tree
    # JSON has no NaN or infinity: where Python would produce one, Orchid refuses the result
    if isinstance(expected, _Error) or (
        isinstance(expected, float) and not math.isfinite(expected)
    ):
        with pytest.raises(ExpressionError):
            evaluate(text, {})
        return
    result = evaluate(text, {})
    assert type(result) is type(expected)
    assert result == expected or (math.isnan(result) and math.isnan(expected))


_garbage = st.lists(
    st.sampled_from(
        [
            *(" ", "(", ")", "[", "]", ",", ".", "'", '"', "\\", "+", "-", "*", "**", "/", "//"),
            *("%", "<", "==", "!=", ">=", "and", "or", "not", "in", "1", "0", "2.5", "1e3", "x"),
            *("s", "items", "len", "min", "round", "str", "int", "sorted", "foo", "true", "null"),
            *("}", "{", "$", "é", "\n", "'a'", "9999", "_", "a.b", "[]", "sqrt", "sum", "=", "!"),
        ]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=250, deadline=None)
@given(st.one_of(_garbage, st.text(max_size=40)))
def test_garbage_parses_or_raises_expression_error(text: str) -> None:
    try:
        expr = parse(text)
    except ExpressionError:
        return
    with contextlib.suppress(ExpressionError):
        expr.evaluate({"x": 1.5, "s": "ab", "items": [1, 2]})


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_interpolating_garbage_raises_only_expression_error(text: str) -> None:
    with contextlib.suppress(ExpressionError):
        interpolate({"v": [text]}, {"x": 1})
