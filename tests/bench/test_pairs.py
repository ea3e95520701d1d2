"""The interleaved A/B comparison of the benchmarks (bench/benchkit.py), on made-up runs."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import benchkit


def test_ab_pairs_alternate_their_order_and_each_is_followed_by_an_aa_pair() -> None:
    assert benchkit.pair_schedule(2) == [
        (1, "A/B", ("A", "B")),
        (2, "A/A", ("A", "A")),
        (3, "A/B", ("B", "A")),
        (4, "A/A", ("A", "A")),
    ]


def test_the_ratio_is_b_over_a_whichever_ran_first() -> None:
    a, b = {"arm": "A", "t": 10.0}, {"arm": "B", "t": 12.0}
    assert benchkit.pair_ratios(1, "A/B", a, b, ["t"])["t_ratio"] == 1.2
    assert benchkit.pair_ratios(1, "A/B", b, a, ["t"])["t_ratio"] == 1.2
    again = {"arm": "A", "t": 8.0}
    assert benchkit.pair_ratios(2, "A/A", a, again, ["t"])["t_ratio"] == 0.8
    assert benchkit.pair_ratios(3, "A/B", a, {"arm": "B"}, ["t"])["t_ratio"] is None


def test_a_difference_is_within_noise_when_the_ab_median_lies_in_the_aa_range() -> None:
    def pairs(ab: list[float]) -> list[dict[str, object]]:
        aa = [0.9, 1.0, 1.1]
        return [{"kind": "A/A", "t_ratio": r} for r in aa] + [
            {"kind": "A/B", "t_ratio": r} for r in ab
        ]

    noise, ab = benchkit.ratio_summary(pairs([1.0, 1.05, 1.5]), ["t"])
    assert (noise["min"], noise["max"], noise["median"]) == (0.9, 1.1, 1.0)
    assert ab["median"] == 1.05 and ab["verdict"] == "within noise"
    assert benchkit.ratio_summary(pairs([1.2, 1.3, 1.0]), ["t"])[1]["verdict"] == "above noise"
    assert benchkit.ratio_summary(pairs([0.8, 0.7, 1.0]), ["t"])[1]["verdict"] == "below noise"
