"""Map-reduce as plain Python functions: count the words of a generated corpus.

    python examples/fat_mapreduce/mapreduce.py            # embedded engine (no server)
    ORCHID_URL=http://127.0.0.1:8042 python examples/...   # or on a server (`orchid up`)

`count` runs once per chunk (one work, one job per chunk); `merge` adds the counts up in
a job of its own. The counts are `collections.Counter` objects: not JSON, so they travel
pickled, and come back as Counters.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

from orchid import task, workflow

WORDS = [
    "tape",
    "disk",
    "muon",
    "pion",
    "kaon",
    "quark",
    "gluon",
    "photon",
    "jet",
    "vertex",
    "track",
    "hit",
]


@task(cores=1, retries=1)
def count(chunk: int, words: int, seed: int) -> Counter[str]:
    """The word counts of one chunk of the corpus (made here from its seed)."""
    rng = random.Random(seed * 1000 + chunk)
    return Counter(rng.choice(WORDS) for _ in range(words))


@task
def merge(counts: list[Counter[str]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return total


@workflow(name="wordcount")
def wordcount(chunks: int, words: int, seed: int = 1) -> dict[str, int]:
    partial = count.map([{"chunk": i, "words": words, "seed": seed} for i in range(chunks)])
    total = merge(partial.result()).result()
    return dict(total.most_common())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--words", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    totals = wordcount(args.chunks, args.words, args.seed)
    assert sum(totals.values()) == args.chunks * args.words
    for word, n in totals.items():
        print(f"{word:8s} {n:8d}")
    print(f"{sum(totals.values())} words in {args.chunks} chunks")


if __name__ == "__main__":
    main()
