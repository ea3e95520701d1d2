"""Write jobs.jsonl for the Rubin-like DAG: visits × detectors, coadds per sky patch.

Each (visit, detector) runs isr → characterize → calibrate. The sky is split in
patches; a patch's coadd waits for the calibrate jobs of the detectors that
overlap it in every visit (several parents from across the graph), and measure
waits for its coadd. Parents always come before children, as the file format
requires. Deterministic for given arguments.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def generate(visits: int, detectors: int, patches: int, seed: int = 7):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    for v in range(visits):
        for d in range(detectors):
            key = f"v{v:04d}-d{d:03d}"
            args = {"visit": v, "detector": d}
            yield {"work": "isr", "name": key, "args": args}
            yield {"work": "characterize", "name": key, "args": args, "parents": [f"isr/{key}"]}
            yield {
                "work": "calibrate",
                "name": key,
                "args": args,
                "parents": [f"characterize/{key}"],
            }
    for p in range(patches):
        # each patch overlaps 2-4 neighbouring detectors; every visit sees it
        first = rng.randrange(detectors)
        overlap = sorted({(first + k) % detectors for k in range(rng.randint(2, 4))})
        parents = [f"calibrate/v{v:04d}-d{d:03d}" for v in range(visits) for d in overlap]
        yield {
            "work": "coadd",
            "name": f"p{p:03d}",
            "args": {"patch": p, "inputs": len(parents)},
            "parents": parents,
        }
        yield {
            "work": "measure",
            "name": f"p{p:03d}",
            "args": {"patch": p},
            "parents": [f"coadd/p{p:03d}"],
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=40)
    ap.add_argument("--detectors", type=int, default=20)
    ap.add_argument("--patches", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("jobs.jsonl"))
    a = ap.parse_args()
    n = 0
    with a.out.open("w") as fh:
        for job in generate(a.visits, a.detectors, a.patches):
            fh.write(json.dumps(job) + "\n")
            n += 1
    print(f"wrote {n:,} jobs to {a.out}")


if __name__ == "__main__":
    main()
