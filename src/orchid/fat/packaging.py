"""Shipping a function's code: its source tree, zipped, and how the job finds the function.

The source tree of a function is the top-level package its module belongs to, or, for a
module that is not in a package (a script, ``tasks.py`` next to it), the module's folder.
Modules installed in the interpreter (site-packages, the standard library) are not shipped:
the worker imports them as they are installed there. The zip is deterministic (sorted
names, fixed times), so the same tree always has the same sha256, and is uploaded to the
cache once.

A function is called by reference (``module:qualname``) when the job can import it that
way, else shipped by value with cloudpickle (functions of ``__main__``, notebooks, nested
functions): the source tree still comes along for what they import.
"""

from __future__ import annotations

import fnmatch
import importlib
import io
import os
import sys
import sysconfig
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from orchid.fat.errors import UsageError

DEFAULT_EXCLUDE = (
    "__pycache__",
    "*.pyc",
    "*.pyo",
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    "node_modules",
    "*.egg-info",
    ".orchid",
    "*.db",
    "*.db-wal",
    "*.db-shm",
)
MAX_SOURCE_BYTES = 64 * 1024 * 1024
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Tree:
    """Files to ship: those under ``base / top`` (``top`` "" for the whole folder)."""

    base: Path
    top: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


def _installed(path: Path) -> bool:
    """In site-packages or the standard library: the worker has it installed too."""
    if {"site-packages", "dist-packages"} & set(path.parts):
        return True
    return path.is_relative_to(Path(sysconfig.get_paths()["stdlib"]).resolve())


def tree_of(module: ModuleType, include: Sequence[str], exclude: Sequence[str]) -> Tree | None:
    """The source tree of a module, or None when there is none to ship (installed, or a
    notebook / interactive session with no file)."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    if _installed(path):
        return None
    spec = getattr(module, "__spec__", None)
    package = (spec.parent if spec is not None else module.__package__) or ""
    if module.__name__ == "__main__" or not package:
        return Tree(path.parent, "", tuple(include), tuple(exclude))
    top = package.split(".")[0]
    top_module = sys.modules.get(top)
    top_file = getattr(top_module, "__file__", None)
    if top_file:
        top_dir = Path(top_file).resolve().parent
    else:  # a namespace package: climb from the module's folder
        top_dir = path.parent
        for _ in package.split(".")[1:]:
            top_dir = top_dir.parent
    return Tree(top_dir.parent, top, tuple(include), tuple(exclude))


def _excluded(rel: str, patterns: Sequence[str]) -> bool:
    parts = rel.split("/")
    return any(
        fnmatch.fnmatch(rel, p) or any(fnmatch.fnmatch(part, p) for part in parts) for p in patterns
    )


def zip_tree(tree: Tree) -> bytes:
    """The tree's files as a deterministic zip; UsageError if it is too big to ship."""
    root = tree.base / tree.top if tree.top else tree.base
    exclude = (*DEFAULT_EXCLUDE, *tree.exclude)
    files: list[tuple[str, Path]] = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(
            d for d in dirs if not _excluded((here / d).relative_to(tree.base).as_posix(), exclude)
        )
        for name in names:
            path = here / name
            rel = path.relative_to(tree.base).as_posix()
            if _excluded(rel, exclude) or not path.is_file():
                continue
            wanted = not tree.include or any(fnmatch.fnmatch(rel, p) for p in tree.include)
            if not wanted and not (name == "__init__.py" and tree.top):  # keep packages whole
                continue
            files.append((rel, path))
    buffer = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for rel, path in sorted(files):
            total += path.stat().st_size
            if total > MAX_SOURCE_BYTES:
                raise UsageError(
                    f"the source tree {root} holds more than {MAX_SOURCE_BYTES >> 20} MiB; "
                    "leave data out with exclude=['data/*', ...] (or list what the tasks "
                    "need with include=[...]) in @task / @workflow"
                )
            info = zipfile.ZipInfo(rel, _EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            zf.writestr(info, path.read_bytes())
    return buffer.getvalue()


def reference(fn: Any) -> str | None:
    """``module:qualname`` if importing it on the worker gives this function (or the task
    that wraps it), else None: the function must then be shipped by value."""
    module_name = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module_name or module_name == "__main__" or "<" in qualname:
        return None
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except Exception:
            return None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    if obj is fn or getattr(obj, "fn", None) is fn:
        return f"{module_name}:{qualname}"
    return None
