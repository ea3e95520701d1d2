"""Run one ``function`` payload in its own process: ``python -m orchid.executors.wrapper``.

The local executor starts this module as the job's process, so user code is imported and
called here and nowhere else: a crash, ``sys.exit`` or segfault ends this process only, and
the executor reports it like any failed command.

Inputs come from the environment the executor sets:

- ``ORCHID_FUNCTION``: ``"package.module:function"`` (the function part may be dotted,
  ``"module:Class.method"``); the module is imported from the workdir (the current
  directory) or ``PYTHONPATH`` (where the executor puts ``payload.python_path``).
- ``ORCHID_ARGS``: a JSON object, passed as keyword arguments (or the file
  ``ORCHID_ARGS_FILE`` when the arguments are too large for the environment).
- ``ORCHID_RESULT_FILE``: where the JSON-encoded return value goes; without it the value is
  printed as the last line of stdout.

Exit status: 0 on success; 1 when the function raises (traceback on stderr); 2 when the
function cannot be found or the inputs are malformed; 3 when the return value is not JSON.
The last stderr line always says what went wrong, since the executor quotes it.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from orchid import jobvars

EXIT_RAISED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_JSON = 3


class FunctionNotFoundError(Exception):
    """The target cannot be imported or is not callable; the message is for people."""


def load_function(target: str) -> Callable[..., Any]:
    """Import ``"package.module:function"`` and return the callable it names."""
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise FunctionNotFoundError(f"bad function {target!r}: expected 'package.module:function'")
    hint = "the module must be importable from the workdir or python_path"
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if missing == module_name or module_name.startswith(missing + "."):
            raise FunctionNotFoundError(
                f"module {module_name!r} not found for function {target!r}; {hint}"
            ) from exc
        traceback.print_exc()
        raise FunctionNotFoundError(
            f"importing module {module_name!r} for function {target!r} failed: {exc}"
        ) from exc
    except Exception as exc:
        traceback.print_exc()
        raise FunctionNotFoundError(
            f"importing module {module_name!r} for function {target!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    where = getattr(obj, "__file__", None) or module_name
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise FunctionNotFoundError(
                f"function {attr_path!r} not found in module {module_name!r} ({where})"
            ) from None
    if not callable(obj):
        raise FunctionNotFoundError(f"{target!r} is not callable")
    return obj  # type: ignore[no-any-return]


def _write_result(text: str) -> None:
    path = jobvars.find(jobvars.RESULT_FILE)
    if not path:
        sys.stdout.write("\n" + text + "\n")
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)  # the executor never sees half a result


def main() -> int:
    """Import, call, store the result; return the process exit status."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    target = jobvars.get(jobvars.FUNCTION)
    try:
        text = jobvars.find(jobvars.ARGS)
        path = jobvars.find(jobvars.ARGS_FILE)
        if text is None and path:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        args = json.loads(text or "{}")
    except (ValueError, OSError) as exc:
        print(f"orchid: ORCHID_ARGS is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not isinstance(args, dict):
        print("orchid: ORCHID_ARGS must be a JSON object", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        function = load_function(target)
    except FunctionNotFoundError as exc:
        print(f"orchid: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        value = function(**args)
    except Exception:
        traceback.print_exc()
        return EXIT_RAISED
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        print(
            f"orchid: the return value of {target} is not JSON-serialisable: {exc}",
            file=sys.stderr,
        )
        return EXIT_NOT_JSON
    _write_result(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
