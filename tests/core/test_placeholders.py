"""Placeholders: where each stands in a shell script, how it is escaped, what validate says."""

from __future__ import annotations

import shlex

import pytest

from orchid.core.placeholders import (
    Slot,
    UnsafePlaceholder,
    command_warnings,
    parse,
    render_command,
    render_text,
    shell_script_index,
)


@pytest.mark.parametrize(
    ("command", "index"),
    [
        (["sh", "-c", "echo"], 2),
        (["/bin/bash", "-c", "echo", "arg0"], 2),
        (["bash", "-euc", "echo"], 2),
        (["bash", "-o", "pipefail", "-c", "echo"], 4),
        (["zsh", "-l", "-c", "echo"], 3),
        (["/usr/bin/env", "LANG=C", "dash", "-c", "echo"], 4),
        (["busybox", "sh", "-c", "echo"], 3),
        (["sh", "script.sh", "-c"], None),
        (["sh", "-c"], None),
        (["python", "-c", "print()"], None),
        (["echo", "-c", "x"], None),
        ([], None),
    ],
)
def test_the_script_of_a_shell_command_is_found(command: list[str], index: int | None) -> None:
    assert shell_script_index(command) == index


def _where(script: str) -> list[str]:
    return [p.where for p in parse(script, shell=True) if isinstance(p, Slot)]


def test_each_placeholder_knows_where_it_stands_in_a_script() -> None:
    script = (
        "echo {a} \"x {b}\" 'y {c}' $'{d}' \"$(printf %s {e})\" `{f}` \\{g} # {h}\n"
        "cat <<EOF\n{i}\nEOF\necho {j} ${{HOME}} (cd /; {k})"
    )
    assert _where(script) == [
        "bare", "double", "single", "ansi", "bare", "backtick", "escaped", "comment",
        "heredoc", "bare", "bare",
    ]  # fmt: skip


def test_outside_a_script_values_are_pasted_as_before() -> None:
    args = {"name": "x y; z", "cfg": {"a": 1}}
    assert render_text("--name={name} {cfg} {{x}} {missing}", args) == (
        '--name=x y; z {"a": 1} {x} {missing}'
    )
    argv = render_command(["prog", "{name}", "{name!q}", "{name!r}"], args)
    assert argv == ["prog", "x y; z", "'x y; z'", "x y; z"]
    assert shlex.split(argv[2]) == ["x y; z"]


def test_in_a_script_values_are_escaped_for_their_place() -> None:
    args = {"v": 'it\'s "$x" `y` \\'}
    out = render_command(["sh", "-c", "a {v} \"b {v}\" 'c {v}' {v!r} {v!q}"], args)[2]
    assert out == (
        "a 'it'\"'\"'s \"$x\" `y` \\' "
        '"b it\'s \\"\\$x\\" \\`y\\` \\\\" '
        "'c it'\\''s \"$x\" `y` \\' "
        'it\'s "$x" `y` \\ '
        "'it'\"'\"'s \"$x\" `y` \\'"
    )


@pytest.mark.parametrize(
    "script", ["echo `{v}`", "echo \\{v}", "echo $'{v}'", "cat <<EOF\n{v}\nEOF\n"]
)
def test_a_value_that_cannot_be_made_safe_is_refused(script: str) -> None:
    with pytest.raises(UnsafePlaceholder):
        render_command(["sh", "-c", script], {"v": "a'\\b\nEOF\n"})


def test_unknown_names_stay_and_shell_braces_survive() -> None:
    script = "awk '{print $1}' ${HOME} {missing} {{v}}"
    assert render_command(["sh", "-c", script], {"v": 1})[2] == (
        "awk '{print $1}' ${HOME} {missing} {v}"
    )


def test_validate_warns_about_raw_values_and_code() -> None:
    assert list(command_warnings(["sh", "-c", 'echo {a} "{b}"'])) == []
    warned = list(command_warnings(["bash", "-c", '{a!r}; echo "{b!q}" `{c}`']))
    assert [i for i, _ in warned] == [2, 2, 2]
    assert "unquoted" in warned[0][1] and "inside quotes" in warned[1][1]
    assert "backticks" in warned[2][1]
    (code,) = command_warnings(["python3", "-c", "print('{a}')"])
    assert code[0] == 2 and "sys.argv" in code[1]


@pytest.mark.parametrize("script", ["eval {a}", 'x; bash -c "{a}"', ". {a} ", "f | sh -c {a}"])
def test_validate_warns_when_a_script_runs_text_again(script: str) -> None:
    warned = list(command_warnings(["sh", "-c", script]))
    assert warned and "eval" in warned[0][1]
    assert list(command_warnings(["sh", "-c", "evaluate {a}; shell -c x"])) == []
