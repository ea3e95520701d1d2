"""The layers of ``src/orchid`` (docs/architecture.md, "Layers"): imports point down the
ladder, no import cycle between subpackages, none inside a package except those listed.

The import graph is read with ``ast``, without importing anything: every ``import`` and
``from ... import`` of an ``orchid`` module counts, at module level and inside functions
(a function-level import is a cycle deferred, not removed). Imports under
``if TYPE_CHECKING:`` do not count: they never run. ``from orchid.x import y`` is an edge
to the module ``orchid.x.y`` when there is one, else to ``orchid.x`` (its ``__init__``).

A *unit* is a subpackage (``orchid.store``) or a top-level module (``orchid.settings``);
``orchid`` itself is the root package.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import orchid

SRC = Path(orchid.__file__).parent.parent

# Lowest first. A unit imports only units of its own layer or below (and, inside a layer,
# without a cycle); docs/architecture.md describes each.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset(
        {
            "orchid",
            "orchid.errors",
            "orchid.config",
            "orchid.safefiles",
            "orchid.extras",
            "orchid.jobvars",
        }
    ),
    frozenset({"orchid.core"}),
    frozenset(
        {
            "orchid.store",
            "orchid.notify",
            "orchid.wire",
            "orchid.client",
            "orchid.logserve",
            "orchid.generators",
        }
    ),
    frozenset({"orchid.bus", "orchid.datamgr", "orchid.executors", "orchid.telemetry"}),
    frozenset({"orchid.settings", "orchid.auth"}),
    frozenset({"orchid.engine"}),
    frozenset(
        {
            "orchid.hpo",
            "orchid.graph",
            "orchid.testing",
            "orchid.backend",
            "orchid.web",
            "orchid.worker",
        }
    ),
    frozenset({"orchid.api", "orchid.ui"}),
    frozenset({"orchid.fat", "orchid.server"}),
    frozenset({"orchid.cli"}),
)

# Imports allowed against the rules above, each with why. An entry that no longer matches
# an import fails the test: delete it.
ALLOWED: Mapping[tuple[str, str], str] = {
    # --- between units ---
    ("orchid", "orchid.fat"): "`orchid.task` & co.: a lazy re-export on first attribute "
    "access (PEP 562 __getattr__), so that `import orchid` stays light",
    ("orchid.settings", "orchid.executors"): "lazy: loading the settings checks each "
    "[executors.NAME] section against its executor's options model, so a typo fails at "
    "start; the registry names executors by import path and imports Settings only for "
    "type hints",
    # --- inside a package ---
    ("orchid.core.template", "orchid.core.rawcheck"): "lazy: the checks of a template as "
    "written (which use the model and its analysis) run only once the model refused it",
    ("orchid.fat.definitions", "orchid.fat.decorators"): "lazy: a function decorated twice "
    "is found by the decorators' own types, which are built on the definitions",
    (
        "orchid.generators.base",
        "orchid.generators.samplers",
    ): "lazy: a sampler by name, its library "
    "(optuna, nevergrad) imported only when chosen; being reworked by issue 17 item 6",
    ("orchid.generators.base", "orchid.generators.ngopt"): "lazy: see generators.base -> "
    "generators.samplers",
}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module
    line: int
    lazy: bool  # inside a function

    def __str__(self) -> str:
        where = "function-level" if self.lazy else "module-level"
        return f"{self.source}:{self.line} imports {self.target} ({where})"


def modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "orchid").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, known: Mapping[str, Path]) -> Iterator[Import]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def module(dotted: str) -> str:
        while dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted

    def walk(node: ast.AST, lazy: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    yield from walk(other, lazy)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "orchid":
                        yield Import(name, module(alias.name), child.lineno, lazy)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*up, *([child.module] if child.module else [])])
                if base.split(".")[0] != "orchid":
                    continue
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    target = sub if sub in known else module(base)
                    yield Import(name, target, child.lineno, lazy)
            else:
                inner = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                yield from walk(child, lazy or inner)

    for imp in walk(ast.parse(path.read_text()), False):
        if imp.target != name:
            yield imp


def unit(module: str) -> str:
    return ".".join(module.split(".")[:2])


@functools.cache
def all_imports() -> list[Import]:
    known = modules()
    return [imp for name, path in sorted(known.items()) for imp in imports_of(name, path, known)]


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    nodes = sorted(set(edges) | {t for ts in edges.values() for t in ts})
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _pair(imp: Import) -> tuple[str, str]:
    """The allow-list key of an import: units between packages, modules inside one."""
    if unit(imp.source) != unit(imp.target):
        return unit(imp.source), unit(imp.target)
    return imp.source, imp.target


def _explain(component: list[str], imports: list[Import]) -> str:
    inside = set(component)
    lines = sorted(
        {
            str(i)
            for i in imports
            if _pair(i) not in ALLOWED and _pair(i)[0] in inside and _pair(i)[1] in inside
        }
    )
    return " <-> ".join(component) + "\n    " + "\n    ".join(lines)


def test_no_import_cycle_between_subpackages() -> None:
    imports = all_imports()
    edges: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        a, b = unit(imp.source), unit(imp.target)
        if a != b and (a, b) not in ALLOWED:
            edges[a].add(b)
    found = cycles(edges)
    assert not found, "import cycles between packages:\n" + "\n".join(
        _explain(c, imports) for c in found
    )


def test_no_import_cycle_inside_a_package() -> None:
    imports = all_imports()
    edges: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        if unit(imp.source) == unit(imp.target) and (imp.source, imp.target) not in ALLOWED:
            edges[imp.source].add(imp.target)
    found = cycles(edges)
    assert not found, "import cycles inside a package:\n" + "\n".join(
        _explain(c, imports) for c in found
    )


def _layer(name: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if name in layer)


def test_every_unit_has_a_layer() -> None:
    units = {unit(m) for m in modules()}
    placed = set().union(*LAYERS)
    assert units - placed == set(), "add them to LAYERS (and to docs/architecture.md)"
    assert placed - units == set(), "these are gone: take them out of LAYERS"


def test_imports_point_down_the_layers() -> None:
    upward = [
        str(i)
        for i in all_imports()
        if unit(i.source) != unit(i.target)
        and _layer(unit(i.target)) > _layer(unit(i.source))
        and _pair(i) not in ALLOWED
    ]
    assert upward == [], "imports of a higher layer:\n" + "\n".join(upward)


def test_every_allowance_is_still_needed() -> None:
    used = {_pair(i) for i in all_imports()}
    assert sorted(set(ALLOWED) - used) == [], "no such import any more: delete the entries"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import orchid.store.jobs\n", {"orchid.store.jobs"}),
        ("from orchid.store import jobs, bulk\n", {"orchid.store.jobs", "orchid.store.bulk"}),
        ("from orchid.store.jobs import get\n", {"orchid.store.jobs"}),
        ("from . import jobs\nfrom .tables import jobs as t\n", {"orchid.store.jobs"}),
        ("def f():\n    from orchid.core import dag\n", {"orchid.core.dag"}),
        ("if TYPE_CHECKING:\n    from orchid.core import dag\n", set()),
        ("import json\nfrom typing import Any\n", set()),
    ],
)
def test_the_graph_reads_each_kind_of_import(
    tmp_path: Path, source: str, expected: set[str]
) -> None:
    path = tmp_path / "dispatch.py"
    path.write_text(source)
    known = {**modules(), "orchid.store.dispatch": path}
    got = {i.target for i in imports_of("orchid.store.dispatch", path, known)}
    assert got == expected | ({"orchid.store.tables"} if "tables" in source else set())


def test_a_cycle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def _packages() -> list[str]:
    return sorted(m for m, p in modules().items() if p.name == "__init__.py" and m.count(".") == 1)


@pytest.mark.parametrize("package", _packages())
def test_every_package_names_its_public_surface(package: str) -> None:
    """``__all__`` in each package's ``__init__.py``: names it defines or imports, or its
    modules (listed without being imported)."""
    path = modules()[package]
    tree = ast.parse(path.read_text())
    listed = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    ]
    assert listed, f"{path} has no __all__"
    bound = {
        name
        for node in ast.walk(tree)
        for name in (
            [a.asname or a.name for a in node.names]
            if isinstance(node, ast.ImportFrom | ast.Import)
            else [node.name]
            if isinstance(node, ast.FunctionDef | ast.ClassDef)
            else [t.id for t in node.targets if isinstance(t, ast.Name)]
            if isinstance(node, ast.Assign)
            else []
        )
    }
    missing = [n for n in listed[0] if n not in bound and f"{package}.{n}" not in modules()]
    assert missing == [], f"{package}.__all__ names what it neither defines nor holds"


@pytest.mark.parametrize(("a", "b"), [("orchid.api", "orchid.ui"), ("orchid.ui", "orchid.api")])
def test_the_api_and_the_monitor_do_not_import_each_other(a: str, b: str) -> None:
    """Both stand on orchid.web; orchid.server mounts them side by side."""
    found = [str(i) for i in all_imports() if unit(i.source) == a and unit(i.target) == b]
    assert not found, "move what they share into orchid.web:\n" + "\n".join(found)
