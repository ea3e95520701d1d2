"""Checks that span a whole template: names, references, dependencies, loops, job DAGs.

:func:`analyse` returns an :class:`Analysis` the engine uses at run time (work
order, what each work may read), or raises :class:`TemplateError` with every
problem found, each with the path of the field at fault.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from orchid.core import expr, hpo, nested
from orchid.core.dag import CycleError, ancestors, reachable_pairs, topological_order
from orchid.core.template import InputSpec, LoopSpec, NestedWorkflow, Template, WorkSpec
from orchid.errors import ExpressionError, TemplateError

ROOTS = ("params", "works", "loops", "loop", "workflow")
WORK_FIELDS = ("status", "outputs", "results", "counts", "iteration")
LOOP_FIELDS = ("status", "iteration", "vars")
CURRENT_LOOP_FIELDS = ("name", "iteration", "vars")
NESTED_FIELDS = ("status", "iteration")  # what expressions read of a nested workflow's work
MAX_LOOP_DEPTH = 8  # loops inside loops: how deep they may nest (the outermost is depth 1)
# loops inside loops: the most iterations their max_iterations allow together (the product
# along a nesting), ten times one loop's most; else 8 levels of 10,000 bound nothing
MAX_NESTED_ITERATIONS = 100_000


@dataclass(frozen=True)
class Analysis:
    """What the engine needs to know about a valid template, computed once."""

    order: tuple[str, ...]  # works in an order that respects `after` (loops expanded in place)
    upstream: Mapping[str, frozenset[str]]  # works each work (or loop) may read, transitively
    needs: Mapping[str, frozenset[str]]  # direct `after` of each work/loop, loops kept as names
    job_upstream: Mapping[str, frozenset[str]]  # works whose jobs are parents of this work's jobs
    read_outputs: frozenset[str]  # works whose outputs/results some expression reads
    read_counts: frozenset[str] = frozenset()  # works whose job counts some expression reads
    loops: Mapping[str, LoopSpec] = field(default_factory=dict)
    # a template with nested workflows (`workflow:` works) runs as its expansion: ``flat``
    # holds it, ``scopes`` each nested workflow by its flat name (see core/nested.py)
    flat: Template | None = None
    scopes: Mapping[str, nested.Scope] = field(default_factory=dict)


class Problems:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def suggest(self, name: str, options: Iterable[str]) -> str:
        """`` (did you mean 'x'?)`` for the first few problems only: each suggestion
        compares ``name`` with the options, and a large template with many mistakes
        would otherwise pay that for every one of them."""
        return _suggest(name, options) if len(self.items) < MAX_SUGGESTIONS else ""

    def raise_if_any(self) -> None:
        if self.items:
            raise TemplateError(self.items)


MAX_SUGGESTIONS = 10  # problems that get a "did you mean"
MAX_CANDIDATES = 1000  # names one suggestion compares with (difflib is slow)


def work_path(t: Template, w: WorkSpec) -> str:
    return f"works[{_position(t, t.works, w)}]({w.name})"


def _lpath(t: Template, lp: LoopSpec) -> str:
    return f"loops[{_position(t, t.loops, lp)}]({lp.name})"


def _position(t: Template, items: list[Any], item: Any) -> int:
    found = t.positions.get(id(item))
    if found is None or items[found] is not item:  # a deep copy of the template
        found = next(i for i, x in enumerate(items) if x is item)
    return found


def analyse(t: Template) -> Analysis:
    """Validate everything that is not structure; raise TemplateError listing each problem."""
    if any(w.workflow is not None for w in t.works):
        return analyse_nested(t)
    return analyse_scope(t)


def analyse_scope(t: Template, expressions: bool = True) -> Analysis:
    """:func:`analyse` of one scope: a nested workflow's work is one node of its graph.
    ``expressions``: check them (an expanded template's were, scope by scope)."""
    p = Problems()
    works = {w.name: w for w in t.works}
    loops = {lp.name: lp for lp in t.loops}
    _check_names(t, p)
    _check_payloads(t, p)
    before_loops = len(p.items)
    loop_of = _check_loops(t, works, loops, p)
    if len(p.items) > before_loops:  # which work is in which loop is unclear: stop here
        p.raise_if_any()
    # names twice or missing payloads leave the graph well defined: check it all the same

    # dependencies that do not resolve are left out, so the checks below still run
    needs, inner_needs = _dependencies(t, works, loops, loop_of, p)
    parents: dict[str, set[str]] = {**needs, **inner_needs}
    outer_nodes = [w.name for w in t.works if w.name not in loop_of]
    outer_nodes += [n for n in loops if n not in loop_of]
    try:
        outer_order = topological_order(
            outer_nodes, ((a, b) for b, ns in needs.items() for a in ns)
        )
    except CycleError as exc:
        p.add("works", cycle_message(exc))
        p.raise_if_any()
        raise
    order: list[str] = []
    topo = list(outer_order)  # every work and loop, each scope in `after` order
    known = len(p.items)

    def expand(nodes: Iterable[str]) -> None:
        for node in nodes:
            if node not in loops:
                order.append(node)
                continue
            inner = loops[node].works
            edges = ((a, b) for b in inner for a in inner_needs.get(b, ()))
            try:
                inner_order = topological_order(inner, edges)
            except CycleError as exc:
                p.add(f"{_lpath(t, loops[node])}.works", cycle_message(exc))
                continue
            topo.extend(inner_order)
            expand(inner_order)

    expand(outer_order)
    if len(p.items) > known:  # a cycle: upstream sets are meaningless, stop here
        p.raise_if_any()

    upstream = _Upstream(parents, loops, loop_of)
    read_outputs, read_counts = (
        _check_expressions(t, _Reach(parents, loop_of, topo), p) if expressions else (set(), set())
    )
    job_upstream = _check_static_jobs(t, loop_of, p)
    p.raise_if_any()
    return Analysis(
        order=tuple(order),
        upstream=upstream,
        needs={k: frozenset(v) for k, v in parents.items()},
        job_upstream={k: frozenset(v) for k, v in job_upstream.items()},
        read_outputs=frozenset(read_outputs),
        read_counts=frozenset(read_counts),
        loops=loops,
    )


def cycle_message(exc: CycleError) -> str:
    path = " -> ".join(str(n) for n in exc.cycle)
    return (
        f"`after` makes a cycle: {path}; a work cannot wait for itself. "
        "To repeat works, declare a loop under `loops` instead"
    )


def _check_names(t: Template, p: Problems) -> None:
    seen: dict[str, str] = {}
    for i, w in enumerate(t.works):
        if w.name in seen:
            p.add(f"works[{i}]({w.name}).name", f"'{w.name}' is already the name of {seen[w.name]}")
        seen.setdefault(w.name, f"works[{i}]")
    for i, lp in enumerate(t.loops):
        if lp.name in seen:
            p.add(
                f"loops[{i}]({lp.name}).name", f"'{lp.name}' is already the name of {seen[lp.name]}"
            )
        seen.setdefault(lp.name, f"loops[{i}]")


def _check_payloads(t: Template, p: Problems) -> None:
    for w in t.works:
        path = work_path(t, w)
        given = [k for k in ("command", "function") if getattr(w, k)] + (["noop"] if w.noop else [])
        given += ["workflow"] if w.workflow is not None else []
        if w.hpo is not None:
            _check_hpo(w, path, given, p)
        elif len(given) != 1:
            what = "none" if not given else " and ".join(given)
            p.add(
                path,
                "needs exactly one payload: `command`, `function`, `noop: true` or "
                f"`workflow`; got {what}",
            )
        if w.input is not None:
            _check_input(t, w, w.input, path, p)
        if w.command is not None and not w.command:
            p.add(f"{path}.command", "is empty; give the program and its arguments")
        if w.map is not None:
            forms = [k for k in ("items", "product", "zip") if getattr(w.map, k) is not None]
            if len(forms) != 1:
                p.add(f"{path}.map", "needs exactly one of `items`, `product` or `zip`")
            if w.jobs is not None:
                p.add(f"{path}.map", "cannot be used with `jobs`; list the jobs or map, not both")
            for form in ("product", "zip"):
                if getattr(w.map, form) == {}:
                    p.add(f"{path}.map.{form}", "needs at least one list of values")
            if w.map.zip and all(isinstance(v, list) for v in w.map.zip.values()):
                lengths = {k: len(v) for k, v in w.map.zip.items() if isinstance(v, list)}
                if len(set(lengths.values())) > 1:
                    p.add(f"{path}.map.zip", f"lists must have the same length; got {lengths}")


MAX_COLLECTION = 255


def _check_input(t: Template, w: WorkSpec, spec: InputSpec, path: str, p: Problems) -> None:
    """A work fed by a data manager: its jobs come from files, so it cannot map or list."""
    for other in ("map", "jobs", "hpo"):
        if getattr(w, other) is not None:
            p.add(f"{path}.{other}", "cannot be used with `input`: the jobs come from its files")
    if t.loop_of(w.name) is not None:
        p.add(f"{path}.input", "a work inside a loop cannot take files from a data manager")
    seen: set[str] = set()
    for i, c in enumerate(spec.collections):
        where = f"{path}.input.collections[{i}]"
        scope, sep, name = c.partition(":")
        if not c.strip() or (sep and not (scope and name)):
            p.add(where, f"a collection is 'scope:name' or a folder path; got {c!r}")
        elif len(name if sep else c) > MAX_COLLECTION or len(scope) > 100:
            p.add(where, f"is longer than {MAX_COLLECTION} characters (scope: 100)")
        elif c in seen:
            p.add(where, f"'{c}' is listed twice")
        seen.add(c)


def _check_hpo(w: WorkSpec, path: str, given: list[str], p: Problems) -> None:
    """An hpo work: a payload per trial (none in pull mode), and no other source of jobs."""
    assert w.hpo is not None
    if w.hpo.mode == "pull" and given:
        p.add(path, f"a pull-mode hpo work runs nothing itself; remove {' and '.join(given)}")
    if w.hpo.mode == "jobs" and (len(given) != 1 or w.noop):
        p.add(path, "an hpo work needs one payload run per trial: `command` or `function`")
    for other in ("map", "jobs"):
        if getattr(w, other) is not None:
            p.add(f"{path}.{other}", "an hpo work makes its own jobs (one per trial)")
    for where, message in hpo.check(w.hpo, path, w.parameters):
        p.add(where, message)


def _check_loops(
    t: Template, works: Mapping[str, WorkSpec], loops: Mapping[str, LoopSpec], p: Problems
) -> dict[str, str]:
    """Which loop each work, and each loop inside a loop, is in: ``{name: loop}``."""
    loop_of: dict[str, str] = {}
    nested: dict[str, str] = {}  # the loops inside a loop
    for lp in t.loops:
        path = _lpath(t, lp)
        for j, name in enumerate(lp.works):
            kind = "work" if name in works else "loop"  # a name twice: reported already
            if name not in works and name not in loops:
                options = itertools.chain(works, loops)
                p.add(
                    f"{path}.works[{j}]",
                    f"no work or loop is named '{name}'{p.suggest(name, options)}",
                )
            elif name == lp.name and kind == "loop":
                p.add(f"{path}.works[{j}]", f"loop '{name}' cannot repeat itself")
            elif name in loop_of:
                p.add(
                    f"{path}.works[{j}]",
                    f"'{name}' is already in loop '{loop_of[name]}'; a {kind} belongs to one loop",
                )
            else:
                loop_of[name] = lp.name
                if kind == "loop":
                    nested[name] = lp.name
        for var in lp.next:
            if var not in lp.variables:
                p.add(f"{path}.next.{var}", f"'{var}' is not one of the loop's `variables`")
    for w in t.works:
        if w.name in loop_of and w.jobs is not None:
            p.add(f"{work_path(t, w)}.jobs", "a work inside a loop cannot list static jobs")
    from_file = [w.name for w in t.works if w.jobs == "from_file"]
    if from_file and not t.jobs_file:
        p.add("jobs_file", f"is required: works {from_file} take their jobs from it")
    if t.jobs_file and not from_file:
        p.add("jobs_file", "is given but no work says `jobs: from_file`")
    _check_nesting(t, loops, nested, p)
    return loop_of


def _check_nesting(
    t: Template, loops: Mapping[str, LoopSpec], loop_of: Mapping[str, str], p: Problems
) -> None:
    """Loops inside loops: none inside itself (through others), at most MAX_LOOP_DEPTH deep.
    A cycle is reported once, at the first of its loops; a depth at the loop that passes it."""
    for lp in t.loops:
        chain = [lp.name]
        while chain[-1] in loop_of and len(chain) <= MAX_LOOP_DEPTH + 1:
            outer = loop_of[chain[-1]]
            if outer in chain:
                cycle = chain[chain.index(outer) :]
                first = min(cycle, key=lambda n: _position(t, t.loops, loops[n]))
                if outer == lp.name and first == lp.name:
                    shown = " > ".join([lp.name, *reversed(cycle)])
                    p.add(
                        f"{_lpath(t, lp)}.works[{lp.works.index(chain[-1])}]",
                        f"loops are inside each other in a cycle: {shown}; "
                        "a loop cannot be inside a loop it contains",
                    )
                break
            chain.append(outer)
        else:  # no cycle
            _check_iterations(t, lp, chain, loops, p)
            if len(chain) == MAX_LOOP_DEPTH + 1 and chain[-1] not in loop_of:
                outer_lp = loops[loop_of[lp.name]]
                p.add(
                    f"{_lpath(t, outer_lp)}.works[{outer_lp.works.index(lp.name)}]",
                    f"loop '{lp.name}' is {len(chain)} loops deep "
                    f"({' > '.join(reversed(chain))}); loops nest at most {MAX_LOOP_DEPTH} deep",
                )


def _check_iterations(
    t: Template, lp: LoopSpec, chain: list[str], loops: Mapping[str, LoopSpec], p: Problems
) -> None:
    """Said at the innermost loop whose nesting (``chain``: it, then the loops around it)
    allows more than MAX_NESTED_ITERATIONS iterations together, once."""
    counts = [loops[n].max_iterations for n in chain]
    total = math.prod(counts)
    if len(chain) < 2 or total <= MAX_NESTED_ITERATIONS:
        return
    if math.prod(counts[1:]) > MAX_NESTED_ITERATIONS:
        return  # said at a loop further out
    shown = " × ".join(f"{n} {c:,}" for n, c in zip(reversed(chain), reversed(counts), strict=True))
    p.add(
        f"{_lpath(t, lp)}.max_iterations",
        f"loops inside loops may run {total:,} iterations together ({shown}); at most "
        f"{MAX_NESTED_ITERATIONS:,}: lower the max_iterations of these loops",
    )


def enclosing(name: str, loop_of: Mapping[str, str]) -> list[str]:
    """The loops ``name`` is inside, outermost first (of a valid template)."""
    out: list[str] = []
    while name in loop_of and len(out) <= MAX_LOOP_DEPTH:  # bounded: a name may be twice
        name = loop_of[name]
        out.append(name)
    out.reverse()
    return out


def _dependencies(
    t: Template,
    works: Mapping[str, WorkSpec],
    loops: Mapping[str, LoopSpec],
    loop_of: Mapping[str, str],
    p: Problems,
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Outer graph over works-outside-loops and loops; inner graph per loop (over its works
    and the loops inside it). A work or loop waiting for something outside its loop makes
    the loop wait for it: the outermost of its loops that is not also around the other."""
    needs: dict[str, set[str]] = defaultdict(set)
    inner: dict[str, set[str]] = defaultdict(set)
    nodes: list[tuple[str, str, list[str]]] = [(_lpath(t, lp), lp.name, lp.after) for lp in t.loops]
    nodes += [(work_path(t, w), w.name, w.after) for w in t.works]
    for where, me, after in nodes:
        around = enclosing(me, loop_of)
        (needs if not around else inner)[me]
        for j, dep in enumerate(after):
            path = f"{where}.after[{j}]"
            if me in loops and me in enclosing(dep, loop_of):
                p.add(path, f"a loop cannot wait for its own work '{dep}'")
                continue
            if dep in around:
                p.add(path, f"'{me}' is inside loop '{dep}' and cannot wait for it")
                continue
            if not _resolve_after(t, path, me, dep, works, loops, loop_of, p):
                continue
            depth = len(enclosing(dep, loop_of))  # `dep`'s scope is one `me` is in, too
            waiter = around[depth] if depth < len(around) else me
            (needs if depth == 0 else inner)[waiter].add(dep)
    return needs, inner


def _resolve_after(
    t: Template,
    path: str,
    me: str,
    dep: str,
    works: Mapping[str, WorkSpec],
    loops: Mapping[str, LoopSpec],
    loop_of: Mapping[str, str],
    p: Problems,
) -> bool:
    if dep == me:
        p.add(path, f"'{me}' cannot wait for itself")
        return False
    if dep not in works and dep not in loops:
        p.add(
            path, f"no work or loop is named '{dep}'{p.suggest(dep, itertools.chain(works, loops))}"
        )
        return False
    theirs, mine = enclosing(dep, loop_of), enclosing(me, loop_of)
    if theirs != mine[: len(theirs)]:
        shared = 0  # the loops around both; `theirs` goes on further than that
        while shared < len(mine) and theirs[shared] == mine[shared]:
            shared += 1
        inside = theirs[shared]
        p.add(
            path,
            f"'{dep}' is inside loop '{inside}'; wait for the whole loop: after: [{inside}]",
        )
        return False
    return True


class _Upstream(Mapping[str, frozenset[str]]):
    """For each work and loop: the works whose results it may read (loops expanded).

    Computed for a node when asked (nothing at run time asks): all of them at once would
    be O(works²) in size for a chain of works.
    """

    def __init__(
        self,
        parents: Mapping[str, set[str]],
        loops: Mapping[str, LoopSpec],
        loop_of: Mapping[str, str],
    ) -> None:
        self._parents, self._loops, self._loop_of = parents, loops, loop_of

    def _works(self, node: str) -> set[str]:
        """The node itself if a work, else every work inside the loop (at any depth)."""
        if node not in self._loops:
            return {node}
        out: set[str] = set()
        for n in self._loops[node].works:
            out |= self._works(n)
        return out

    def _before(self, node: str) -> set[str]:
        out: set[str] = set()
        for n in ancestors(node, self._parents):
            out |= self._works(n)
        return out

    def __getitem__(self, node: str) -> frozenset[str]:
        if node not in self._parents:
            raise KeyError(node)
        out = self._before(node)
        for lp in enclosing(node, self._loop_of):
            out |= self._before(lp)
        if node in self._loops:  # `until`/`next` read the iteration's works too
            out |= self._works(node)
        return frozenset(out)

    def __iter__(self) -> Iterator[str]:
        yield from self._parents

    def __len__(self) -> int:
        return len(self._parents)


# Where an expression is: a work (its `when`, parameters, map), a loop's `until` and `next`
# (which also read the iteration's own works), or a loop's first `variables` (which do not).
Site = tuple[str, str]  # (work or loop name, "work" | "loop" | "variables")


class _Reach:
    """Answers "may an expression at this site read that work (or loop)?" for many sites.

    Every question becomes "is node a an ancestor of node b" in one graph: the works
    outside loops and the loops (`after`, a loop standing for its works), and each loop's
    own works and loops (`after` inside the loop). Questions are first collected (:meth:`ask`
    answers True meanwhile), then answered together by :func:`reachable_pairs`.
    """

    def __init__(
        self, parents: Mapping[str, set[str]], loop_of: Mapping[str, str], topo: list[str]
    ) -> None:
        self.parents, self.loop_of, self.topo = parents, loop_of, topo
        self.pending: set[tuple[str, str]] = set()
        self.holds: set[tuple[str, str]] | None = None  # None: still collecting

    def _pair(self, site: Site, root: str, name: str) -> tuple[str, str] | bool:
        """The question in the one graph: the read node (or the loop around it) and the site
        (or the loop around it) lifted to the innermost loop (or top level) around both."""
        node, mode = site
        here = enclosing(node, self.loop_of) + ([node] if mode == "loop" else [])
        there = enclosing(name, self.loop_of)
        shared = 0
        while shared < min(len(here), len(there)) and here[shared] == there[shared]:
            shared += 1
        read = there[shared] if shared < len(there) else name
        if shared == len(here) and mode == "loop":
            return True  # `until`/`next` read their iteration, loops inside it included
        reader = here[shared] if shared < len(here) else node
        if read == reader:
            # a loop around the site, read from inside it: its current state; but a
            # loop's first `variables` (and a work itself) come before its iteration
            return shared < len(here)
        return (read, reader)

    def ask(self, site: Site, root: str, name: str) -> bool:
        pair = self._pair(site, root, name)
        if isinstance(pair, bool):
            return pair
        a, b = pair
        if a in self.parents.get(b, ()):
            return True
        if a == b:
            return False
        if self.holds is None:
            self.pending.add(pair)
            return True
        return pair in self.holds

    def resolve(self) -> None:
        self.holds = reachable_pairs(self.topo, self.parents, self.pending)


def _suggest(name: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` if one of ``options`` is close to ``name``.

    Among many options, compares with at most MAX_CANDIDATES of about the same length and
    first letter: difflib takes ~10 µs a comparison, seconds over 10^5 names.
    """
    import difflib

    listed = list(options)
    if len(listed) > MAX_CANDIDATES:
        first, size = name[:1].lower(), len(name)
        near = (o for o in listed if o[:1].lower() == first and abs(len(o) - size) <= 3)
        listed = list(itertools.islice(near, MAX_CANDIDATES))
    close = difflib.get_close_matches(name, listed, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _expressions(t: Template) -> Iterator[tuple[str, str, Site, bool, Any]]:
    """(path, kind, site, inside a loop?, value) for every expression in the template."""
    loop_of = t.loop_of
    for w in t.works:
        path, site, inner = work_path(t, w), (w.name, "work"), loop_of(w.name) is not None
        if w.when is not None:
            yield f"{path}.when", "condition", site, inner, w.when
        yield f"{path}.parameters", "bindings", site, inner, w.parameters
        if w.map is not None:
            yield f"{path}.map", "bindings", site, inner, w.map.model_dump(exclude_none=True)
    for lp in t.loops:
        path, site = _lpath(t, lp), (lp.name, "loop")
        yield f"{path}.until", "condition", site, True, lp.until
        # the first iteration's variables are bound before its works ran
        yield f"{path}.variables", "bindings", (lp.name, "variables"), False, lp.variables
        for var, text in lp.next.items():
            yield f"{path}.next.{var}", "condition", site, True, text


def _check_expressions(t: Template, reach: _Reach, p: Problems) -> tuple[set[str], set[str]]:
    """Check every expression; return the works whose results, and whose counts, are read.

    Two passes: the first parses and collects the upstream questions, which are then
    answered together; the second checks every reference with the answers.
    """
    parsed: list[tuple[str, Site, bool, list[expr.Expr]]] = []
    for path, kind, site, in_loop, value in _expressions(t):
        try:
            exprs = [expr.parse(value)] if kind == "condition" else expr.find_bindings(value)
        except ExpressionError as exc:
            p.add(path, str(exc))
            continue
        if exprs:
            parsed.append((path, site, in_loop, exprs))
    loops = t.loops_by_name()
    for _, site, _, exprs in parsed:
        for e in exprs:
            for root, name, *_ in (r for r in e.references() if len(r) > 1):
                if name in (t.works_by_name if root == "works" else loops):
                    reach.ask(site, root, name)
    reach.resolve()
    read: set[str] = set()
    counted: set[str] = set()
    for path, site, in_loop, exprs in parsed:
        for e in exprs:
            for ref in sorted(e.references()):
                problem = _check_reference(t, ref, _asker(reach, site), in_loop, read, counted, p)
                if problem:
                    p.add(path, f"`{e.source}`: {problem}")
    return read, counted


def _asker(reach: _Reach, site: Site) -> Callable[[str, str], bool]:
    return lambda root, name: reach.ask(site, root, name)


def _check_reference(
    t: Template,
    ref: tuple[str, ...],
    upstream: Callable[[str, str], bool],
    in_loop: bool,
    read: set[str],
    counted: set[str],
    p: Problems,
) -> str | None:
    """What is wrong with reading ``ref`` here, or None. ``upstream(root, name)``: whether
    the work or loop of that name ends before this expression is evaluated."""
    root = ref[0]
    if root not in ROOTS:
        return f"unknown name '{root}'; expressions may read {', '.join(ROOTS)}"
    if len(ref) == 1:
        if root in ("works", "loops"):
            return (
                f"name the {root[:-1]}: {root}.NAME (or {root}['NAME']); a computed name "
                "cannot be checked before the workflow runs"
            )
        return None if root != "loop" or in_loop else "`loop` is only known inside a loop"
    name = ref[1]
    if root == "params":
        if name not in t.parameters:
            known = ", ".join(t.parameters) or "none are declared"
            return f"no workflow parameter '{name}' (declare it under `parameters`; known: {known})"
    elif root == "works":
        if name not in t.works_by_name:
            return f"no work is named '{name}'{p.suggest(name, t.works_by_name)}"
        if not upstream(root, name):
            return (
                f"work '{name}' is not upstream of here, so its results may not exist yet; "
                f"add it (or the loop it is in) to `after`"
            )
        if len(ref) > 2 and ref[2] not in WORK_FIELDS:
            return f"a work has no field '{ref[2]}'; use one of {', '.join(WORK_FIELDS)}"
        if t.work(name).workflow is not None and (len(ref) == 2 or ref[2] not in NESTED_FIELDS):
            return (
                f"'{name}' is a nested workflow: read works.{name}.status (its outcome); "
                "its works' results are read inside it"
            )
        if len(ref) == 2 or ref[2] in ("outputs", "results"):
            read.add(name)
        if len(ref) == 2 or ref[2] == "counts":
            counted.add(name)
    elif root == "loops":
        if name not in t.loops_by_name():
            return f"no loop is named '{name}'"
        if not upstream(root, name):
            return f"loop '{name}' is not upstream of here; add it to `after`"
        if len(ref) > 2 and ref[2] not in LOOP_FIELDS:
            return f"a loop has no field '{ref[2]}'; use one of {', '.join(LOOP_FIELDS)}"
    elif root == "loop":
        if not in_loop:
            return "`loop` is only known inside a loop's works, `until` and `next`"
        if name not in CURRENT_LOOP_FIELDS:
            return f"`loop` has no field '{name}'; use one of {', '.join(CURRENT_LOOP_FIELDS)}"
    elif root == "workflow" and name not in ("name", "id"):
        return f"`workflow` has no field '{name}'; use name or id"
    return None


def _check_static_jobs(t: Template, loop_of: Mapping[str, str], p: Problems) -> dict[str, set[str]]:
    """Inline jobs: unique names, parents that exist in static works, no cycles."""
    job_upstream: dict[str, set[str]] = defaultdict(set)
    static = {w.name: w for w in t.works if isinstance(w.jobs, list)}
    names = {
        name: {j.name for j in w.jobs} for name, w in static.items() if isinstance(w.jobs, list)
    }
    file_works = {w.name for w in t.works if w.jobs == "from_file"}
    nodes: list[tuple[str, ...]] = []
    edges: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for w in static.values():
        path = f"{work_path(t, w)}.jobs"
        seen: set[str] = set()
        for i, job in enumerate(w.jobs if isinstance(w.jobs, list) else []):
            if job.name in seen:
                p.add(f"{path}[{i}].name", f"job '{job.name}' is listed twice in work '{w.name}'")
            seen.add(job.name)
            nodes.append((w.name, job.name))
            for k, ref in enumerate(job.parents):
                hint = len(p.items) < MAX_SUGGESTIONS
                parent, problem = resolve_parent(ref, w.name, names, loop_of, file_works, hint)
                if problem:
                    p.add(f"{path}[{i}].parents[{k}]", problem)
                    continue
                assert parent is not None
                edges.append((parent, (w.name, job.name)))
                if parent[0] != w.name:
                    job_upstream[w.name].add(parent[0])
    job_cycles(p, nodes, edges)
    return job_upstream


def resolve_parent(
    ref: str,
    work: str,
    names: Mapping[str, set[str]],
    loop_of: Mapping[str, str],
    file_works: set[str] | frozenset[str] = frozenset(),
    suggest: bool = True,
) -> tuple[tuple[str, str] | None, str | None]:
    """``job`` or ``work/job`` → (work, job), or a message saying what is wrong (with a
    "did you mean" if ``suggest``)."""
    parent, problem = parent_ref(ref, work, names, loop_of, file_works)
    if parent is None:
        return None, problem
    pw, pj = parent
    if pj not in names[pw]:
        return None, missing_parent(ref, pw, pj, names[pw] if suggest else ())
    return parent, None


def parent_ref(
    ref: str,
    work: str,
    static: Collection[str],
    loop_of: Mapping[str, str],
    file_works: Collection[str] = frozenset(),
) -> tuple[tuple[str, str] | None, str | None]:
    """``job`` or ``work/job`` → (work, job) if it may name a parent at all (a static job
    outside loops), whether or not that job exists; else a message saying what is wrong.

    ``static`` names the works whose jobs are known (listed, or from the jobs file).
    """
    pw, _, pj = ref.rpartition("/")
    pw = pw or work
    if pw in loop_of:
        return None, f"'{ref}': work '{pw}' is inside a loop; job parents must be outside loops"
    if pw in file_works and pw not in static:
        return None, f"'{ref}': inline jobs cannot have parents in the jobs file ('{pw}')"
    if pw not in static:
        return None, f"'{ref}': work '{pw}' has no static jobs (`jobs:` or jobs_file)"
    return (pw, pj), None


def missing_parent(ref: str, work: str, job: str, known: Iterable[str]) -> str:
    """The message for a parent that names no job; ``known`` are names to suggest from."""
    return f"'{ref}': work '{work}' has no job '{job}'{_suggest(job, known)}"


def job_cycles(
    p: Problems,
    nodes: Sequence[tuple[str, ...]],
    edges: Sequence[tuple[tuple[str, ...], tuple[str, ...]]],
) -> None:
    """A problem for a cycle among listed jobs' parents (those that name nothing are left
    out of ``edges``: the rest may still loop)."""
    if not edges:
        return
    try:
        topological_order(nodes, edges)
    except CycleError as exc:
        cyc = " -> ".join("/".join(str(part) for part in node) for node in exc.cycle)  # type: ignore[attr-defined]
        p.add("works", f"job parents make a cycle: {cyc}")


# --- nested workflows (core/nested.py) ---------------------------------------------------


def analyse_nested(t: Template) -> Analysis:
    """:func:`orchid.core.validate.analyse` of a template with nested workflows: each scope
    is checked on its own (paths say where: ``works[1](sub).workflow.works[0](a)``), then
    the flat expansion is analysed for the engine (``Analysis.flat``, ``.scopes``)."""
    p = Problems()
    read: set[str] = set()
    counted: set[str] = set()
    _check_nested(t, "", "", 0, 0, p, read, counted)
    p.raise_if_any()
    flat, scopes = nested.expand(t)
    a = analyse_scope(flat, expressions=False)
    return replace(
        a,
        read_outputs=frozenset(read),
        read_counts=frozenset(counted),
        flat=flat,
        scopes=scopes,
    )


def _check_nested(
    t: Template,
    prefix: str,
    where: str,
    depth: int,
    loops_around: int,
    p: Problems,
    read: set[str],
    counted: set[str],
) -> None:
    try:
        a = analyse_scope(t)
        read.update(prefix + n for n in a.read_outputs)
        counted.update(prefix + n for n in a.read_counts)
    except TemplateError as exc:
        for path, message in exc.problems:
            if prefix and path == "jobs_file":
                continue  # said below, for the work at fault
            p.add(f"{where}{path}", message)
    loop_of = {n: lp.name for lp in t.loops for n in lp.works}
    for i, w in enumerate(t.works):
        path = f"{where}works[{i}]({w.name})"
        if w.jobs == "from_file" and prefix:
            p.add(
                f"{path}.jobs",
                "a nested workflow's work cannot take its jobs from the jobs_file; list them",
            )
        if w.workflow is None:
            continue
        for key in sorted(w.model_fields_set - nested.ALLOWED):
            p.add(
                f"{path}.{key}",
                f"a nested workflow's work cannot set `{key}`; set it on the works inside it",
            )
        for key in w.parameters:
            if key not in w.workflow.parameters:
                known = ", ".join(w.workflow.parameters) or "none are declared"
                p.add(
                    f"{path}.parameters.{key}",
                    f"the nested workflow has no parameter '{key}' (declare it under "
                    f"workflow.parameters; known: {known})",
                )
        if depth + 1 > nested.MAX_NESTING:
            p.add(
                f"{path}.workflow",
                f"nests workflows more than {nested.MAX_NESTING} deep; flatten some of them",
            )
            continue
        # inside loops, its loops are loops inside those: their depth counts them
        looped = loops_around + len(enclosing(w.name, loop_of))
        _check_loop_depth(w.workflow, looped, f"{path}.workflow.", p)
        inner = nested.scope_template(t, w)
        _check_nested(
            inner,
            f"{prefix}{w.name}{nested.SEP}",
            f"{path}.workflow.",
            depth + 1,
            looped,
            p,
            read,
            counted,
        )


def _check_loop_depth(inner: NestedWorkflow, around: int, where: str, p: Problems) -> None:
    """A nested workflow's loops inside ``around`` loops of the enclosing scopes: how deep
    they nest counts those (MAX_LOOP_DEPTH), said at the loop that passes it."""
    if not around:
        return
    loop_of = {n: lp.name for lp in inner.loops for n in lp.works}
    for i, lp in enumerate(inner.loops):
        level = around + 1 + len(enclosing(lp.name, loop_of))
        if level == MAX_LOOP_DEPTH + 1:  # the loops inside it are deeper: said once
            p.add(
                f"{where}loops[{i}]({lp.name})",
                f"is {level} loops deep with the {around} loop(s) around the nested workflow; "
                f"loops nest at most {MAX_LOOP_DEPTH} deep",
            )
