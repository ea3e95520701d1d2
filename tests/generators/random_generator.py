"""A custom generator for the tests: uniform random points, seeded, as a user would write one.

Reads the request from $ORCHID_ARGS_FILE, writes the points to $ORCHID_RESULT_FILE.
"""

from __future__ import annotations

import json
import math
import os
import random

from orchid.core.hpo import HpoSpec, active


def main() -> None:
    with open(os.environ["ORCHID_ARGS_FILE"], encoding="utf-8") as f:
        req = json.load(f)
    spec = HpoSpec.model_validate({"space": req["space"], "max_trials": 1})
    rng = random.Random(f"{req['seed']}-{len(req['trials'])}")
    points = []
    for _ in range(req["n"]):
        point: dict[str, object] = {}
        for name, p in req["space"].items():
            if not active(spec, name, point):
                continue
            if p["type"] == "categorical":
                point[name] = rng.choice(p["choices"])
            elif p["type"] == "int":
                point[name] = rng.randint(p["low"], p["high"])
            elif p.get("log"):
                point[name] = math.exp(rng.uniform(math.log(p["low"]), math.log(p["high"])))
            else:
                point[name] = rng.uniform(p["low"], p["high"])
        points.append(point)
    with open(os.environ["ORCHID_RESULT_FILE"], "w", encoding="utf-8") as f:
        json.dump(points, f)


if __name__ == "__main__":
    main()
