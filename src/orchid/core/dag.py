"""Pure graph logic: topological order, cycle detection, and the release rule.

The store implements release with set-based SQL; :func:`release` here is the
reference model it is tested against, and what in-memory engines use.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, MutableMapping, Sequence
from typing import TypeVar

from orchid.errors import InvalidInput

N = TypeVar("N", bound=Hashable)


class CycleError(InvalidInput):
    """The graph has a cycle; ``cycle`` lists its nodes, the first repeated at the end."""

    def __init__(self, cycle: Sequence[object]) -> None:
        self.cycle = list(cycle)
        super().__init__("cycle: " + " -> ".join(str(n) for n in self.cycle))


def topological_order(nodes: Iterable[N], edges: Iterable[tuple[N, N]]) -> list[N]:
    """Nodes ordered so that every edge ``(a, b)`` has ``a`` before ``b``.

    Stable: among the nodes free to come next, the earliest in the input comes
    first, so an input that is already in order is returned unchanged. Raises
    :class:`CycleError` naming one cycle if there is no such order.
    """
    order_of: dict[N, int] = {}
    for n in nodes:
        order_of.setdefault(n, len(order_of))
    children: dict[N, list[N]] = defaultdict(list)
    parents: dict[N, list[N]] = defaultdict(list)
    indegree = dict.fromkeys(order_of, 0)
    for a, b in edges:
        for n in (a, b):
            if n not in order_of:
                order_of[n] = len(order_of)
                indegree[n] = 0
        children[a].append(b)
        parents[b].append(a)
        indegree[b] += 1
    by_index = list(order_of)
    heap = [order_of[n] for n in order_of if indegree[n] == 0]
    heapq.heapify(heap)
    out: list[N] = []
    while heap:
        n = by_index[heapq.heappop(heap)]
        out.append(n)
        for c in children[n]:
            indegree[c] -= 1
            if indegree[c] == 0:
                heapq.heappush(heap, order_of[c])
    if len(out) < len(order_of):
        left = {n for n, d in indegree.items() if d > 0}
        cycle: list[N] = _one_cycle(left, parents)
        raise CycleError(cycle)
    return out


def _one_cycle(left: set[N], parents: Mapping[N, Sequence[N]]) -> list[N]:
    """Walk backward inside the unsorted remainder until a node repeats.

    Every unsorted node still has an unsorted parent (that is why it was not
    sorted), so walking to parents never gets stuck, unlike walking to children,
    which can leave the cycle for a node merely downstream of it.
    """
    node = min(left, key=str)
    seen: dict[N, int] = {}
    path: list[N] = []
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(p for p in parents[node] if p in left)
    cycle = path[seen[node] :]
    cycle.reverse()  # parent-to-child order, as the edges run
    return [*cycle, cycle[0]]


def ancestors(node: N, parents: Mapping[N, Iterable[N]]) -> set[N]:
    """Every node from which ``node`` can be reached (not including itself, unless on a cycle)."""
    out: set[N] = set()
    stack = list(parents.get(node, ()))
    while stack:
        n = stack.pop()
        if n not in out:
            out.add(n)
            stack.extend(parents.get(n, ()))
    return out


def reachable_pairs(
    order: Sequence[N],
    parents: Mapping[N, Iterable[N]],
    pairs: Iterable[tuple[N, N]],
    width: int = 2048,
) -> set[tuple[N, N]]:
    """The pairs ``(a, b)`` among ``pairs`` where ``a`` is an ancestor of ``b``.

    ``order`` lists every node in a topological order of ``parents`` (nodes it does not
    list reach nothing). One pass down the graph per ``width`` distinct ``a`` carries, for
    each node, the bit set of those ``a`` it descends from: O(edges) big-integer ORs of at
    most ``width`` bits per pass, whatever the depth of the graph, where a walk up from
    each ``b`` would cost O(nodes) per question (10^10 steps for 10^5 works in a chain).
    """
    wanted: dict[N, list[N]] = defaultdict(list)
    for a, b in pairs:
        wanted[a].append(b)
    sources = list(wanted)
    position = {n: i for i, n in enumerate(order)}
    out: set[tuple[N, N]] = set()
    for start in range(0, len(sources), width):
        chunk = [a for a in sources[start : start + width] if a in position]
        if not chunk:
            continue
        bit = {a: 1 << i for i, a in enumerate(chunk)}
        first = min(position[a] for a in chunk)
        reach: dict[N, int] = {}  # node → the sources of this chunk above it
        for n in order[first + 1 :]:
            mask = 0
            for p in parents.get(n, ()):
                mask |= reach.get(p, 0) | bit.get(p, 0)
            if mask:
                reach[n] = mask
        for a in chunk:
            for b in wanted[a]:
                if reach.get(b, 0) & bit[a]:
                    out.add((a, b))
    return out


def release(
    pending: MutableMapping[N, int],
    children: Mapping[N, Sequence[N]],
    succeeded: Iterable[N],
) -> list[N]:
    """Decrement the unfinished-parent count of each child of the succeeded nodes.

    Returns the children whose count reached zero, in first-reached order. This
    is the rule the store applies as one UPDATE per batch; the cost is the
    number of edges leaving the batch, never the size of the graph.
    """
    released: list[N] = []
    for parent in succeeded:
        for child in children.get(parent, ()):
            pending[child] -= 1
            if pending[child] == 0:
                released.append(child)
            elif pending[child] < 0:
                raise ValueError(f"{child!r} released more often than it has parents")
    return released


def blocked_by(
    children: Mapping[N, Sequence[N]], failed: Iterable[N], done: Iterable[N] = ()
) -> set[N]:
    """Every descendant of the failed nodes that has not already finished: they can never run."""
    finished = set(done)
    out: set[N] = set()
    stack = [c for f in failed for c in children.get(f, ())]
    while stack:
        n = stack.pop()
        if n not in out and n not in finished:
            out.add(n)
            stack.extend(children.get(n, ()))
    return out
