"""Graph logic: topological order, cycles, ancestors, the release rule, blocked descendants."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from orchid.core.dag import CycleError, ancestors, blocked_by, release, topological_order
from orchid.errors import InvalidInput

# deterministic and leaves nothing behind in the working tree
PROPERTY = settings(max_examples=50, deadline=None, database=None, derandomize=True)
# for the xfail property: fail fast, without spending seconds shrinking the example
NO_SHRINK = settings(PROPERTY, phases=[Phase.explicit, Phase.generate])

Edges = list[tuple[int, int]]


def _is_cycle(cycle: list[object], edges: list[tuple[object, object]]) -> bool:
    """A closed walk along real edges: first node repeated at the end, no other repeats."""
    if len(cycle) < 2 or cycle[0] != cycle[-1]:
        return False
    if len(set(cycle[:-1])) != len(cycle) - 1:
        return False
    return all((a, b) in set(edges) for a, b in itertools.pairwise(cycle))


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 12) -> tuple[list[int], Edges]:
    """A random DAG: edges go from lower to higher rank; labels shuffled so ids mean nothing."""
    n = draw(st.integers(1, max_nodes))
    labels = draw(st.permutations(list(range(n))))
    edges = [
        (labels[i], labels[j]) for i in range(n) for j in range(i + 1, n) if draw(st.booleans())
    ]
    nodes = draw(st.permutations(labels))
    return list(nodes), edges


@st.composite
def cyclic_graphs(draw: st.DrawFn) -> tuple[list[int], Edges]:
    """A random graph with at least one cycle, plus extra nodes upstream and downstream."""
    n = draw(st.integers(2, 10))
    edges = [(a, b) for a in range(n) for b in range(n) if a != b and draw(st.integers(0, 3)) == 0]
    k = draw(st.integers(2, n))
    ring = draw(st.permutations(list(range(n))))[:k]
    edges += [(ring[i], ring[(i + 1) % k]) for i in range(k)]
    return list(range(n)), sorted(set(edges))


# --- topological_order -------------------------------------------------------------------


def test_no_edges_keeps_input_order() -> None:
    assert topological_order(["c", "a", "b"], []) == ["c", "a", "b"]


def test_chain_is_ordered() -> None:
    assert topological_order(["c", "b", "a"], [("a", "b"), ("b", "c")]) == ["a", "b", "c"]


def test_diamond() -> None:
    order = topological_order(
        ["d", "c", "b", "a"], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    )
    assert order[0] == "a" and order[-1] == "d"
    assert sorted(order[1:3]) == ["b", "c"]


def test_duplicate_nodes_appear_once() -> None:
    assert topological_order(["a", "b", "a"], [("a", "b")]) == ["a", "b"]


def test_nodes_only_named_in_edges_are_included() -> None:
    assert topological_order(["a"], [("a", "b"), ("c", "b")]) == ["a", "c", "b"]


def test_empty_graph() -> None:
    assert topological_order([], []) == []


def test_works_with_tuples_as_nodes() -> None:
    nodes = [("w", "j2"), ("w", "j1")]
    assert topological_order(nodes, [(("w", "j1"), ("w", "j2"))]) == [("w", "j1"), ("w", "j2")]


def test_order_is_deterministic() -> None:
    nodes = [f"n{i}" for i in range(30)]
    edges = [(f"n{i}", f"n{j}") for i in range(30) for j in range(i + 1, 30) if (i * j) % 7 == 1]
    first = topological_order(nodes, edges)
    for _ in range(5):
        assert topological_order(list(nodes), list(edges)) == first


def test_edges_may_be_a_generator() -> None:
    assert topological_order([1, 2], ((a, b) for a, b in [(2, 1)])) == [2, 1]


def test_an_order_that_is_already_valid_is_kept() -> None:
    nodes = ["a", "b", "c", "d"]
    assert topological_order(nodes, [("a", "d"), ("b", "c")]) == nodes


@PROPERTY
@given(dags())
def test_order_respects_every_edge(graph: tuple[list[int], Edges]) -> None:
    nodes, edges = graph
    order = topological_order(nodes, edges)
    assert sorted(order) == sorted(nodes)
    pos = {n: i for i, n in enumerate(order)}
    for a, b in edges:
        assert pos[a] < pos[b]


# --- cycles ------------------------------------------------------------------------------


def test_cycle_error_names_a_real_cycle() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "a")]
    with pytest.raises(CycleError) as info:
        topological_order(["a", "b", "c"], edges)
    assert _is_cycle(info.value.cycle, edges)  # type: ignore[arg-type]
    assert set(info.value.cycle) == {"a", "b", "c"}
    assert str(info.value).startswith("cycle: ")
    assert " -> ".join(info.value.cycle) in str(info.value)  # type: ignore[arg-type]


def test_self_loop_is_a_cycle() -> None:
    with pytest.raises(CycleError) as info:
        topological_order(["a"], [("a", "a")])
    assert info.value.cycle == ["a", "a"]


def test_cycle_upstream_nodes_are_not_in_the_cycle() -> None:
    # 0 -> 1 <-> 2: node 0 sorts, the rest do not
    edges = [(0, 1), (1, 2), (2, 1)]
    with pytest.raises(CycleError) as info:
        topological_order([0, 1, 2], edges)
    assert _is_cycle(info.value.cycle, edges)  # type: ignore[arg-type]
    assert 0 not in info.value.cycle


def test_cycle_error_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        topological_order([1, 2], [(1, 2), (2, 1)])


def test_cycle_with_a_node_downstream_of_it() -> None:
    # 1 <-> 2 -> 0: node 0 is unsorted but not on the cycle; {0, 1, 2} iterates from 0
    edges = [(1, 2), (2, 1), (2, 0)]
    with pytest.raises(CycleError) as info:
        topological_order([0, 1, 2], edges)
    assert _is_cycle(info.value.cycle, edges)  # type: ignore[arg-type]


@NO_SHRINK
@given(cyclic_graphs())
def test_any_cycle_is_found_and_named(graph: tuple[list[int], Edges]) -> None:
    nodes, edges = graph
    with pytest.raises(CycleError) as info:
        topological_order(nodes, edges)
    assert _is_cycle(info.value.cycle, edges)  # type: ignore[arg-type]


# --- ancestors ---------------------------------------------------------------------------


def test_ancestors() -> None:
    parents = {"d": ["b", "c"], "b": ["a"], "c": ["a"], "a": []}
    assert ancestors("d", parents) == {"a", "b", "c"}
    assert ancestors("b", parents) == {"a"}
    assert ancestors("a", parents) == set()
    assert ancestors("unknown", parents) == set()


def test_ancestors_on_a_cycle_include_the_node() -> None:
    parents = {"a": ["b"], "b": ["a"], "c": ["a"]}
    assert ancestors("a", parents) == {"a", "b"}
    assert ancestors("c", parents) == {"a", "b"}


@PROPERTY
@given(dags())
def test_ancestors_are_exactly_the_nodes_with_a_path(graph: tuple[list[int], Edges]) -> None:
    nodes, edges = graph
    parents: dict[int, list[int]] = defaultdict(list)
    children: dict[int, list[int]] = defaultdict(list)
    for a, b in edges:
        parents[b].append(a)
        children[a].append(b)
    for n in nodes:
        assert ancestors(n, parents) == {m for m in nodes if n in _descendants(m, children)}


def _descendants(n: int, children: dict[int, list[int]]) -> set[int]:
    out: set[int] = set()
    stack = list(children[n])
    while stack:
        x = stack.pop()
        if x not in out:
            out.add(x)
            stack.extend(children[x])
    return out


# --- release -----------------------------------------------------------------------------


def test_release_when_the_last_parent_succeeds() -> None:
    children = {"a": ["c"], "b": ["c", "d"]}
    pending = {"c": 2, "d": 1}
    assert release(pending, children, ["a"]) == []
    assert pending == {"c": 1, "d": 1}
    assert release(pending, children, ["b"]) == ["c", "d"]
    assert pending == {"c": 0, "d": 0}


def test_release_a_batch_in_first_reached_order() -> None:
    children = {"a": ["x", "y"], "b": ["y", "z"]}
    pending = {"x": 1, "y": 2, "z": 1}
    assert release(pending, children, ["a", "b"]) == ["x", "y", "z"]


def test_release_of_a_leaf_releases_nothing() -> None:
    pending = {"b": 1}
    assert release(pending, {"a": ["b"]}, ["b"]) == []
    assert pending == {"b": 1}


def test_release_more_often_than_parents_is_an_error() -> None:
    pending = {"b": 1}
    assert release(pending, {"a": ["b"]}, ["a"]) == ["b"]
    with pytest.raises(ValueError, match="released more often than it has parents"):
        release(pending, {"a": ["b"]}, ["a"])


@st.composite
def dag_and_schedule(draw: st.DrawFn) -> tuple[list[int], Edges, list[list[int]]]:
    """A DAG and the batches in which its nodes succeed: each batch only holds ready nodes."""
    nodes, edges = draw(dags())
    parents: dict[int, set[int]] = defaultdict(set)
    for a, b in edges:
        parents[b].add(a)
    done: set[int] = set()
    batches: list[list[int]] = []
    while len(done) < len(nodes):
        ready = [n for n in nodes if n not in done and parents[n] <= done]
        batch = draw(st.lists(st.sampled_from(ready), min_size=1, unique=True))
        batches.append(batch)
        done |= set(batch)
    return nodes, edges, batches


@PROPERTY
@given(dag_and_schedule())
def test_release_frees_each_node_once_after_all_its_parents(
    case: tuple[list[int], Edges, list[list[int]]],
) -> None:
    nodes, edges, batches = case
    children: dict[int, list[int]] = defaultdict(list)
    parents: dict[int, set[int]] = defaultdict(set)
    for a, b in edges:
        children[a].append(b)
        parents[b].add(a)
    pending = {n: len(parents[n]) for n in nodes if parents[n]}
    succeeded: set[int] = set()
    released: list[int] = []
    for batch in batches:
        succeeded |= set(batch)
        out = release(pending, children, batch)
        for n in out:
            assert parents[n] <= succeeded  # never before its last parent
        released.extend(out)
    assert sorted(released) == sorted(pending)  # every non-root exactly once, no root
    assert all(count == 0 for count in pending.values())


# --- blocked_by --------------------------------------------------------------------------


def test_blocked_by_is_every_unfinished_descendant() -> None:
    children = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "x": ["y"]}
    assert blocked_by(children, ["a"]) == {"b", "c", "d"}
    assert blocked_by(children, ["b"]) == {"d"}
    assert blocked_by(children, ["d"]) == set()
    assert blocked_by(children, []) == set()


def test_blocked_by_skips_finished_nodes() -> None:
    children = {"a": ["b", "c"], "b": ["d"]}
    assert blocked_by(children, ["a"], done=["c"]) == {"b", "d"}


def test_blocked_by_several_failures() -> None:
    children = {"a": ["c"], "b": ["d"], "c": ["e"]}
    assert blocked_by(children, ["a", "b"]) == {"c", "d", "e"}


def test_blocked_by_does_not_include_the_failed_nodes() -> None:
    assert blocked_by({"a": ["b"]}, ["a"]) == {"b"}


@PROPERTY
@given(dags(), st.data())
def test_blocked_by_matches_descendants(
    graph: tuple[list[int], Edges], data: st.DataObject
) -> None:
    nodes, edges = graph
    children: dict[int, list[int]] = defaultdict(list)
    for a, b in edges:
        children[a].append(b)
    failed = data.draw(st.lists(st.sampled_from(nodes), unique=True, max_size=3))
    expected: set[int] = set()
    for f in failed:
        expected |= _descendants(f, children)
    assert blocked_by(children, failed) == expected
