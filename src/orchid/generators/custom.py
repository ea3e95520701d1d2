"""``strategy: custom``: a user command proposes the points (as iDDS's user generators do).

The command is a job like any other (Orchid never runs it in an agent or the server).
It reads the request, a JSON object, from the file ``$ORCHID_ARGS_FILE``::

    {"space": {...}, "objectives": [{"name": "loss", "direction": "minimize"}],
     "segment": "", "seed": 7, "n": 4,
     "trials": [{"number": 0, "params": {...}, "status": "complete", "values": [0.3],
                 "intermediate": {"1": 0.5}}, ...]}

and writes a JSON list of up to ``n`` points (each a mapping of parameter to value) to
``$ORCHID_RESULT_FILE``, or prints it as its last line of output. An empty list says
the search is over. Points outside the space fail the generator job, with the reason.
:class:`CommandGenerator` runs such a command here, for tests and for local use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchid import jobvars
from orchid.core import jsonvalues
from orchid.core.hpo import HpoSpec, check_point
from orchid.core.study import Trial
from orchid.generators.base import GeneratorError, Proposal

MAX_POINTS = 10_000


def request(
    spec: HpoSpec, segment: str, trials: Sequence[Trial], n: int, seed: int | None
) -> dict[str, Any]:
    """What a custom generator reads: the space, the objectives and every trial so far."""
    return {
        "space": {k: p.model_dump(exclude_none=True) for k, p in spec.space.items()},
        "objectives": [g.model_dump() for g in spec.goals()],
        "segment": segment,
        "seed": seed,
        "n": n,
        "trials": [
            {
                "number": t.number,
                "params": dict(t.params),
                "status": t.status,
                "values": list(t.values) if t.values is not None else None,
                "intermediate": {str(k): v for k, v in t.intermediate.items()},
            }
            for t in sorted(trials, key=lambda t: t.number)
        ],
    }


def parse_points(result: Any, spec: HpoSpec, n: int) -> list[Proposal]:
    """The points a generator returned, checked against the space; GeneratorError if bad."""
    if isinstance(result, dict) and "points" in result:
        result = result["points"]
    if not isinstance(result, list):
        raise GeneratorError(
            f"the generator must return a JSON list of points; got {type(result).__name__}"
        )
    if len(result) > max(n, 0) or len(result) > MAX_POINTS:
        raise GeneratorError(f"the generator returned {len(result)} points; {n} were asked for")
    out = []
    for i, point in enumerate(result):
        problem = check_point(spec, point)
        if problem:
            raise GeneratorError(f"point {i} of the generator does not fit the space: {problem}")
        out.append(Proposal(dict(point)))
    return out


class CommandGenerator:
    """Runs a custom generator command in a child process, with the contract above."""

    def __init__(
        self,
        spec: HpoSpec,
        seed: int | None,
        *,
        command: Sequence[str] | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 300.0,
        segment: str = "",
    ) -> None:
        argv = list(command or spec.generator or [])
        if not argv:
            raise GeneratorError("a custom generator needs a command")
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        self.spec, self.seed, self.argv = spec, seed, argv
        self.cwd, self.env, self.timeout, self.segment = cwd, dict(env or {}), timeout, segment
        self._trials: list[Trial] = []

    def tell(self, trials: Sequence[Trial]) -> None:
        self._trials = list(trials)

    def ask(self, n: int) -> list[Proposal]:
        if n <= 0:
            return []
        body = request(self.spec, self.segment, self._trials, n, self.seed)
        with tempfile.TemporaryDirectory(prefix="orchid-gen-") as tmp:
            args_file, result_file = Path(tmp) / "args.json", Path(tmp) / "result.json"
            args_file.write_text(json.dumps(body))
            env = {
                **os.environ,
                **self.env,
                jobvars.ARGS_FILE: str(args_file),
                jobvars.RESULT_FILE: str(result_file),
            }
            try:
                done = subprocess.run(
                    self.argv,
                    cwd=self.cwd,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=self.timeout,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise GeneratorError(f"the generator {self.argv[0]} did not run: {exc}") from None
            if done.returncode != 0:
                tail = (done.stderr.strip().splitlines() or [""])[-1][:300]
                raise GeneratorError(f"the generator exited with {done.returncode}: {tail}")
            text = result_file.read_text() if result_file.exists() else _last_line(done.stdout)
        try:
            result = jsonvalues.loads(text)
        except ValueError as exc:
            raise GeneratorError(f"the generator's output is not JSON: {exc}") from None
        return parse_points(result, self.spec, n)


def _last_line(text: str) -> str:
    lines = [x for x in text.splitlines() if x.strip()]
    return lines[-1] if lines else "null"
