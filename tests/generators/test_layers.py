"""HPO in two layers: the generator library below the engine, the user's ``Study`` above."""

from __future__ import annotations

import ast
from pathlib import Path

import orchid

SRC = Path(orchid.__file__).parent


def imported(package: str) -> set[str]:
    """Every ``orchid.*`` module a package's files import, at any depth of the code."""
    out: set[str] = set()
    for path in (SRC / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                out.add(node.module)
                out.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("orchid.")}


def test_the_generators_import_only_the_core_and_themselves() -> None:
    allowed = (
        "orchid.core",
        "orchid.errors",
        "orchid.extras",
        "orchid.generators",
        "orchid.jobvars",
    )
    assert {m for m in imported("generators") if not m.startswith(allowed)} == set()


def test_the_engine_does_not_import_the_user_facing_hpo_package() -> None:
    assert {m for m in imported("engine") if m == "orchid.hpo" or m.startswith("orchid.hpo.")} == (
        set()
    )
