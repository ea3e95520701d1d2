"""The layered layout: boxes in layers left to right, no overlaps, edges run forwards."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from orchid.graph.layout import GAP_Y, layout


def overlaps(a, b) -> bool:  # type: ignore[no-untyped-def]
    return not (a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y)


def test_a_chain_is_one_row_left_to_right() -> None:
    lay = layout(["a", "b", "c"], [("a", "b", "after"), ("b", "c", "after")])
    xs = [lay.boxes[n].x for n in "abc"]
    assert xs == sorted(xs) and len({lay.boxes[n].y for n in "abc"}) == 1
    assert all(len(r.points) == 2 for r in lay.routes)


def test_a_long_edge_bends_between_the_layers() -> None:
    lay = layout(
        ["a", "b", "c", "d"], [("a", "b", ""), ("b", "c", ""), ("c", "d", ""), ("a", "d", "")]
    )
    (long,) = [r for r in lay.routes if (r.source, r.target) == ("a", "d")]
    assert len(long.points) == 4  # start, a bend in each of the two layers between, end
    assert [p[0] for p in long.points] == sorted(p[0] for p in long.points)


def test_backward_edges_and_unknown_nodes_do_not_break_it() -> None:
    lay = layout(["a", "b"], [("b", "a", ""), ("a", "zzz", ""), ("a", "a", "")])
    assert set(lay.boxes) == {"a", "b"} and len(lay.routes) == 1


def test_frames_enclose_their_members() -> None:
    lay = layout(["a", "b", "c"], [("a", "b", ""), ("b", "c", "")], [("loop", ["b", "c"])])
    (f,) = lay.frames
    for n in "bc":
        b = lay.boxes[n]
        assert f.x < b.x and f.y < b.y and b.x + b.w < f.x + f.w and b.y + b.h < f.y + f.h
    a = lay.boxes["a"]
    assert a.x + a.w < f.x  # a stays outside, on the left


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 40), st.integers(0, 2**32 - 1))
def test_random_dags_have_no_overlapping_boxes(n: int, seed: int) -> None:
    rng = random.Random(seed)
    names = [f"w{i}" for i in range(n)]
    edges = [
        (names[i], names[j], "")
        for i, j in itertools.combinations(range(n), 2)
        if rng.random() < 0.15
    ]
    lay = layout(names, edges)
    boxes = list(lay.boxes.values())
    assert len(boxes) == n
    for a, b in itertools.combinations(boxes, 2):
        assert not overlaps(a, b), (a, b)
    same_layer = {}
    for b in boxes:
        same_layer.setdefault(b.x, []).append(b)
    for layer in same_layer.values():
        layer.sort(key=lambda b: b.y)
        for a, b in itertools.pairwise(layer):
            assert b.y - (a.y + a.h) >= GAP_Y - 1e-6
    for r in lay.routes:  # every edge goes from left to right
        assert r.points[0][0] < r.points[-1][0]
        assert min(p[1] for p in r.points) >= 0 and max(p[1] for p in r.points) <= lay.height
    assert lay.width > 0 and lay.height > 0
