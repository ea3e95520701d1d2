"""``{arg}`` placeholders in commands and env values: how they are rendered, and checked.

One renderer for every executor (:func:`render_command`, :func:`render_text`):

- ``{name}`` is the job arg ``name`` (JSON for lists and objects, else ``str``);
  ``{{`` and ``}}`` are literal braces; a ``{...}`` that names no arg stays as it is, so
  shell text such as ``${HOME}`` or ``awk '{print $1}'`` survives.
- Inside a shell script (the argument of ``sh -c``, ``bash -c``, ``zsh -c``, ...), ``{name}``
  is escaped for where it stands in the script: quoted when it stands bare, escaped inside
  ``"..."`` and ``'...'`` (and in comments and heredocs), so a value always arrives as one piece of text and
  never runs as shell code (``x; rm -rf ~``, ``$(...)``, backticks, quotes, newlines).
- ``{name!q}`` is the value quoted with :func:`shlex.quote`, anywhere: for shell text
  Orchid cannot see as a script (``ssh host 'ls {dir!q}'``).
- ``{name!r}`` is the value as it is, even in a shell script: for an argument that *is*
  shell code, written by someone trusted. ``orchid validate`` warns about each one.

A value that cannot be made safe where it stands (inside backticks, right after a
backslash, a quote inside ``$'...'``, a heredoc line that would end the heredoc) is refused: the job fails with a
message that says what to write instead. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from orchid.errors import InvalidInput

PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
NAMED = re.compile(r"^([A-Za-z_][\w-]*)(?:!([qr]))?$")
"""A placeholder that names an arg: ``name``, ``name!q`` or ``name!r``."""

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "busybox"})
CODE_RUNNERS = frozenset({"python", "python3", "perl", "ruby", "node"})
"""Interpreters whose ``-c``/``-e`` argument is code: a substitution there is a warning."""

Where = Literal[
    "plain", "bare", "single", "double", "ansi", "comment", "backtick", "escaped", "heredoc"
]


class UnsafePlaceholder(InvalidInput):
    """A value cannot be put where its placeholder stands in a shell script."""


@dataclass(frozen=True, slots=True)
class Slot:
    """A placeholder: the arg it names, its form (``""``, ``q``, ``r``), where it stands."""

    token: str  # as written, braces included: what stays when no arg has that name
    name: str
    conv: str
    where: Where = "plain"
    heredoc: tuple[str, bool, bool] | None = None  # (delimiter, quoted, strip tabs)


Piece = str | Slot


def render_value(value: Any) -> str:
    """How one job arg reads inside an argv item: JSON for dicts and lists, else ``str``."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value)
    return str(value)


def shell_script_index(command: Sequence[str]) -> int | None:
    """The index of the script in ``[sh, -c, SCRIPT, ...]`` (any shell, ``-ec``, ``-o x``,
    ``env [VAR=v] bash -c ...``), or None if the command runs no shell script."""
    i = _program_index(command, SHELLS)
    if i is None:
        return None
    has_c = False
    j = i + 1
    while j < len(command):
        arg = command[j]
        if arg == "--":
            j += 1
            break
        if arg in ("-o", "+o", "-O", "+O"):
            j += 2
            continue
        if len(arg) > 1 and arg[0] in "-+" and not arg.startswith("--"):
            has_c = has_c or (arg[0] == "-" and "c" in arg[1:])
            j += 1
            continue
        if arg.startswith("--"):
            j += 1
            continue
        break
    return j if has_c and j < len(command) else None


def code_index(command: Sequence[str]) -> int | None:
    """The index of the code in ``[python, -c, CODE]`` (or ``perl -e``, ``node -e``...)."""
    i = _program_index(command, CODE_RUNNERS)
    if i is None or i + 2 >= len(command) or command[i + 1] not in ("-c", "-e"):
        return None
    return i + 2


def _program_index(command: Sequence[str], names: frozenset[str]) -> int | None:
    i = 0
    if command and _base(command[0]) == "env":
        i = 1
        while i < len(command) and (command[i].startswith("-") or "=" in command[i]):
            i += 1
    if i < len(command) and _base(command[i]) in names:
        if _base(command[i]) == "busybox":  # busybox sh -c ...
            return i + 1 if i + 1 < len(command) and command[i + 1] in SHELLS else None
        return i
    return None


def _base(program: str) -> str:
    name = program.rsplit("/", 1)[-1]
    return re.sub(r"[\d.]+$", "", name) if name.startswith("python") else name


# --- parsing --------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def parse(text: str, shell: bool = False) -> tuple[Piece, ...]:
    """``text`` as literal pieces and slots; in a shell script, each slot knows where it
    stands. Cached: a work's command is parsed once, not once per job."""
    pieces: list[Piece] = []
    pos = 0
    for m in PLACEHOLDER.finditer(text):
        if m.start() > pos:
            pieces.append(text[pos : m.start()])
        token = m.group(0)
        if token in ("{{", "}}"):
            pieces.append(token[0])
        else:
            named = NAMED.match(m.group(1))
            if named:
                pieces.append(Slot(token, named.group(1), named.group(2) or ""))
            else:
                pieces.append(Slot(token, m.group(1), ""))
        pos = m.end()
    if pos < len(text):
        pieces.append(text[pos:])
    return tuple(_shell_contexts(pieces)) if shell else tuple(pieces)


def slots(text: str, shell: bool = False) -> Iterator[Slot]:
    """The placeholders of ``text`` (one per occurrence)."""
    return (p for p in parse(text, shell) if isinstance(p, Slot))


def _shell_contexts(pieces: list[Piece]) -> Iterator[Piece]:
    """Walk the script's literal text like a POSIX shell would read it (quotes, ``$(...)``,
    backticks, comments, heredocs) and tag each slot with where it stands."""
    # N normal, P $(...) or (...), M $((...)), K case..esac, S '..', D "..", A $'..', B `..`,
    # C a comment
    stack: list[str] = ["N"]
    escaped = False
    word_start = True
    heredocs: list[tuple[str, bool, bool]] = []  # pending, their bodies start at a newline
    body: tuple[str, bool, bool] | None = None  # the heredoc whose body we are in
    line = ""  # the current line of a heredoc body, to find its delimiter
    for piece in pieces:
        if isinstance(piece, Slot):
            if body is not None:
                yield Slot(piece.token, piece.name, piece.conv, "heredoc", body)
                line += "\0"  # a line holding a value is never the delimiter
            else:
                yield Slot(piece.token, piece.name, piece.conv, _where(stack[-1], escaped))
            escaped = word_start = False
            continue
        yield piece
        i = 0
        while i < len(piece):
            ch = piece[i]
            nxt = piece[i + 1] if i + 1 < len(piece) else ""
            i += 1
            if body is not None:
                if ch == "\n":
                    delim, _, strip = body
                    if (line.lstrip("\t") if strip else line) == delim:
                        body = heredocs.pop(0) if heredocs else None
                    line = ""
                else:
                    line += ch
                continue
            if escaped:
                escaped = False
                continue
            top = stack[-1]
            if top == "S":
                if ch == "'":
                    stack.pop()
            elif top == "C":
                if ch == "\n":
                    stack.pop()
                    word_start = True
                    if heredocs:
                        body = heredocs.pop(0)
            elif top in ("A", "B", "D"):
                if ch == "\\":
                    escaped = True
                elif ch == _CLOSE[top]:
                    stack.pop()
                elif top == "D" and ch == "`":
                    stack.append("B")
                elif top == "D" and ch == "$" and nxt == "(":
                    stack.append("P")
                    i += 1
                    word_start = True
                    continue
            else:  # N, P, M ($((...))) or K (case ... esac): normal text
                word = _KEYWORD.match(piece, i - 1) if word_start else None
                if word and word.group(1) == "case":
                    stack.append("K")
                elif word and top == "K":  # esac
                    stack.pop()
                if ch == "\\":
                    escaped = True
                elif ch == "'":
                    stack.append("S")
                elif ch == '"':
                    stack.append("D")
                elif ch == "`":
                    stack.append("B")
                elif ch == "$" and nxt == "'":
                    stack.append("A")
                    i += 1
                elif ch in "$(" and piece[i - 1 : i + 2] in ("$((", "(("):
                    stack.append("M")  # arithmetic: `<<` is a shift, `#` no comment
                    i += 2 if ch == "$" else 1
                elif ch == "$" and nxt == "(":
                    stack.append("P")
                    i += 1
                elif ch == "(":
                    stack.append("P")
                elif ch == ")" and top == "M" and nxt == ")":
                    stack.pop()
                    i += 1
                elif ch == ")" and top == "P":
                    stack.pop()
                elif top == "M":
                    pass
                elif ch == "#" and word_start:
                    stack.append("C")
                elif ch == "<" and nxt == "<" and piece[i + 1 : i + 2] == "<":
                    i += 2  # a here-string: its word is read like any other
                elif ch == "<" and nxt == "<":
                    i, found = _heredoc(piece, i + 1)
                    if found is not None:
                        heredocs.append(found)
                elif ch == "\n" and heredocs:
                    body = heredocs.pop(0)
                word_start = ch in " \t\n;&|()<>" or stack[-1] != top  # $( starts a word
                continue
            word_start = False


_CLOSE = {"A": "'", "B": "`", "D": '"'}
_REEVAL = re.compile(r"(?:^|[\s;&|(`])(?:eval|source|\.|(?:ba|z|da|k)?sh\s+-\w*c)\s")
_KEYWORD = re.compile(r"(case|esac)(?=[\s;)]|$)")


def _heredoc(text: str, i: int) -> tuple[int, tuple[str, bool, bool] | None]:
    """After ``<<`` at ``i``: the heredoc's (delimiter, quoted, strip tabs), and where it ends."""
    strip = text[i : i + 1] == "-"
    i += strip
    while i < len(text) and text[i] in " \t":
        i += 1
    m = re.compile(r"""(?:'([^']*)'|"([^"]*)"|\\?([\w.-]+))""").match(text, i)
    if not m:
        return i, None
    quoted = m.group(3) is None or text[i] == "\\"
    delim = next(g for g in m.groups() if g is not None)
    return m.end(), (delim, quoted, strip)


def _where(top: str, escaped: bool) -> Where:
    if escaped:
        return "escaped"
    return {
        "N": "bare",
        "P": "bare",
        "M": "bare",
        "K": "bare",
        "S": "single",
        "D": "double",
        "A": "ansi",
        "B": "backtick",
        "C": "comment",
    }[top]  # type: ignore[return-value]


# --- rendering ------------------------------------------------------------------------


def render_text(text: str, args: Mapping[str, Any], *, shell: bool = False) -> str:
    """``text`` with its placeholders replaced by the job's args (see the module docs);
    ``shell``: ``text`` is a shell script. Raises :class:`UnsafePlaceholder`."""
    out: list[str] = []
    for piece in parse(text, shell):
        if isinstance(piece, str):
            out.append(piece)
        elif piece.token[1:-1] in args and piece.token[1:-1] != piece.name:
            out.append(render_value(args[piece.token[1:-1]]))  # an arg named "x!q" itself
        elif piece.name in args:
            out.append(_escape(piece, render_value(args[piece.name])))
        else:
            out.append(piece.token)
    return "".join(out)


def render_command(command: Sequence[str], args: Mapping[str, Any]) -> list[str]:
    """Every argv item rendered; the script of ``sh -c SCRIPT`` as a shell script."""
    script = shell_script_index(command)
    return [render_text(item, args, shell=i == script) for i, item in enumerate(command)]


def _escape(slot: Slot, value: str) -> str:
    if slot.conv == "r":
        return value
    if slot.conv == "q":
        return shlex.quote(value)
    where = slot.where
    if where == "plain":
        return value
    if where == "bare":
        return shlex.quote(value)
    if where == "single":
        return value.replace("'", "'\\''")
    if where == "double":
        return re.sub(r'([\\"$`])', r"\\\1", value)
    if where == "ansi":
        # bash reads $'...' with backslash escapes, dash as '...' after a $: a value
        # without ' and \\ means the same to both
        if "'" in value or "\\" in value:
            raise UnsafePlaceholder(
                f"the value of {slot.token} holds a quote or a backslash, which $'...' "
                f'cannot hold safely in every shell; write "{{{slot.name}}}" in double quotes'
            )
        return value
    if where == "comment":
        return value.replace("\n", " ").replace("\r", " ")
    if where == "heredoc" and slot.heredoc is not None:
        delim, quoted, strip = slot.heredoc
        lines = value.split("\n")
        if any((ln.lstrip("\t") if strip else ln) == delim for ln in lines[1:]):
            raise UnsafePlaceholder(
                f"the value of {slot.token} has a line '{delim}', which would end the heredoc"
            )
        return value if quoted else re.sub(r"([\\$`])", r"\\\1", value)
    raise UnsafePlaceholder(f"{slot.token} {_UNSAFE[where]}; {_FIX}")


_UNSAFE = {
    "backtick": "stands inside backticks, where a value cannot be quoted safely",
    "escaped": "follows a backslash, which would escape the value's first character",
}
_FIX = "write $(...) instead of backticks, or {name!r} for a value that is trusted shell code"


# --- checks (orchid validate) ---------------------------------------------------------


_REEVAL_WARNING = (
    "the script hands text to eval, source or another shell: a value that reaches it runs "
    'as code whatever its quoting; pass values as arguments ("$1" after the script) and '
    "keep them out of eval"
)


def command_warnings(command: Sequence[str]) -> Iterator[tuple[int, str]]:
    """(argv index, message) for each substitution that may run a value as code."""
    script = shell_script_index(command)
    code = code_index(command)
    text = command[script] if script is not None else ""
    if script is not None and _REEVAL.search(text) and any(True for _ in slots(text, True)):
        yield script, _REEVAL_WARNING
    for i, item in enumerate(command):
        for slot in slots(item, shell=i == script):
            if i == script and slot.conv == "r":
                yield (
                    i,
                    (
                        f"{slot.token} puts the value into the shell script unquoted: a value "
                        f"like 'x; rm -rf ~' runs as shell code; write {{{slot.name}}} (quoted for "
                        "its place in the script) unless the value is trusted shell code"
                    ),
                )
            elif i == script and slot.conv == "q" and slot.where not in ("bare", "plain"):
                yield (
                    i,
                    (
                        f"{slot.token} stands inside quotes: the quotes shlex adds become part of "
                        f"the text; write {{{slot.name}}}, which is escaped for where it stands"
                    ),
                )
            elif i == script and slot.where in _UNSAFE:
                yield i, f"{slot.token} {_UNSAFE[slot.where]}: the job will fail; {_FIX}"
            elif i == code and slot.conv != "q":
                yield (
                    i,
                    (
                        f"{slot.token} is pasted into {command[i - 2]} code: a value with quotes "
                        "can change the program; pass it as an argument after the code "
                        "(sys.argv) or read it from ORCHID_ARGS"
                    ),
                )
