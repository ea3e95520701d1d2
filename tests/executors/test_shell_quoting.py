"""Hostile values through real shells: nothing they hold runs, and each arrives intact."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from orchid.core.placeholders import render_command

HOSTILE = [
    "x; touch pwned",
    "$(touch pwned)",
    "`touch pwned`",
    "'; touch pwned; '",
    '"; touch pwned; "',
    "a\nb; touch pwned",
    "\n touch pwned #",
    "\\",
    "$HOME * ?",
    "-n",
    "",
    "EOF",
    "{{v}} {v}",
]
SCRIPTS = {
    "bare": ("printf '%s|' {v}", "{}|"),
    "joined": ("printf '%s|' pre{v}.txt", "pre{}.txt|"),
    "double": ("printf '%s|' \"pre {v} post\"", "pre {} post|"),
    "single": ("printf '%s|' 'pre {v} post'", "pre {} post|"),
    "subst": ("printf '%s|' \"$(printf '%s' {v})\"", "{}|"),
    "assign": ("x={v}; printf '%s|' \"$x\"", "{}|"),
    "comment": ("printf '%s|' ok # {v}", "ok|"),
    "arithmetic": ("printf '%s|' $((1 << 2)) {v}\necho", "4|{}|\n"),
    "case": ("printf '%s|' \"$(case a in a) printf '%s' {v};; esac)\"", "{}|"),
    "heredoc": ("cat <<EOF\n{v}\nEOF\n", "{}\n"),
    "quoted heredoc": ("cat <<'EOF'\n{v}\nEOF\n", "{}\n"),
}
SHELLS = [s for s in ("sh", "bash", "dash", "zsh") if shutil.which(s)]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("place", list(SCRIPTS))
def test_hostile_values_arrive_intact_and_run_nothing(
    tmp_path: Path, shell: str, place: str
) -> None:
    script, expected = SCRIPTS[place]
    for value in HOSTILE:
        if place.endswith("heredoc") and value == "EOF":
            continue  # refused (tests/core): a line "EOF" would end the heredoc
        argv = render_command([shell, "-c", script], {"v": value})
        done = subprocess.run(
            argv, cwd=tmp_path, capture_output=True, text=True, timeout=10, check=False
        )
        assert not (tmp_path / "pwned").exists(), (place, value, argv)
        assert done.returncode == 0, (place, value, done.stderr)
        want = expected.replace("{}", value.replace("\n", " ") if place == "comment" else value)
        assert done.stdout == want, (place, value, argv)


def test_a_raw_value_runs_as_shell_code(tmp_path: Path) -> None:
    argv = render_command(["sh", "-c", "{code!r}"], {"code": "printf '%s' hi"})
    assert subprocess.run(argv, capture_output=True, text=True, check=True).stdout == "hi"
