"""The DAG shapes every benchmark runs, Orchid's and its peers' alike (standard library only).

Each shape is a stream of ``(group, name, parents)`` in an order where parents come
first, so the largest graph is never held in memory: ``group`` is a layer (Orchid makes
one work of each), ``parents`` are ``(group, name)`` pairs. Deterministic for a given
size and seed, so every system runs exactly the same graph.

- ``layered``: 10 layers; each job has 2-4 random parents in the previous layer; a
  barrier job after every 5 layers waits for the whole layer before it, and the next
  layer waits for it (with 10 layers: two barriers, the last one ends the graph).
- ``chain``: a linear chain, each job the only parent of the next.
- ``bag``: independent jobs.
- ``expand``: one root job whose success releases all the others.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

SHAPES = ("layered", "chain", "bag", "expand")
LAYERS = 10
BARRIER_EVERY = 5

Ref = tuple[str, str]
Node = tuple[str, str, list[Ref]]


def minimum_jobs(shape: str) -> int:
    return LAYERS + LAYERS // BARRIER_EVERY if shape == "layered" else 1


def generate(shape: str, jobs: int, seed: int = 7) -> Iterator[Node]:
    """The graph of ``jobs`` jobs (barriers included) in the given shape."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)}")
    if jobs < minimum_jobs(shape):
        raise ValueError(f"a {shape} graph needs at least {minimum_jobs(shape)} jobs")
    if shape == "layered":
        yield from _layered(jobs, random.Random(seed))
    elif shape == "chain":
        yield ("chain", "0", [])
        for i in range(1, jobs):
            yield ("chain", str(i), [("chain", str(i - 1))])
    elif shape == "bag":
        for i in range(jobs):
            yield ("bag", str(i), [])
    else:
        yield ("root", "0", [])
        for i in range(jobs - 1):
            yield ("fan", str(i), [("root", "0")])


def _layered(jobs: int, rng: random.Random) -> Iterator[Node]:
    barriers = LAYERS // BARRIER_EVERY
    width, extra = divmod(jobs - barriers, LAYERS)
    previous: list[Ref] = []
    for layer in range(LAYERS):
        group = f"L{layer}"
        size = width + (layer < extra)
        after_barrier = len(previous) == 1
        current: list[Ref] = []
        for i in range(size):
            parents = list(previous) if not previous or after_barrier else _pick(previous, rng)
            yield (group, str(i), parents)
            current.append((group, str(i)))
        previous = current
        if (layer + 1) % BARRIER_EVERY == 0:
            name = str((layer + 1) // BARRIER_EVERY)
            yield ("barrier", name, previous)
            previous = [("barrier", name)]


def _pick(previous: list[Ref], rng: random.Random) -> list[Ref]:
    """2-4 distinct random parents from the previous layer (or all of a small one)."""
    want = min(len(previous), 2 + int(rng.random() * 3))
    n = len(previous)
    chosen: dict[int, None] = {}
    while len(chosen) < want:
        chosen[int(rng.random() * n)] = None
    return [previous[i] for i in chosen]


def groups(shape: str) -> list[str]:
    """The groups of a shape in the order they first appear."""
    if shape == "layered":
        return [f"L{i}" for i in range(LAYERS)] + ["barrier"]
    return {"chain": ["chain"], "bag": ["bag"], "expand": ["root", "fan"]}[shape]
