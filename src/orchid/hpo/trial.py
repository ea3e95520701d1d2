"""For the code a trial runs: read its parameters and report intermediate values.

::

    from orchid.hpo import trial

    def objective(lr: float, layers: int) -> dict:      # a `function:` payload: arguments
        for epoch in range(20):
            loss = train_one_epoch(lr, layers)
            trial.report(loss, step=epoch)              # the pruner may stop this trial
        return {"loss": loss}

A command payload gets the same parameters as ``{lr}`` in its argv, as JSON in the
file ``$ORCHID_ARGS_FILE`` (and ``$ORCHID_ARGS``), or as environment variables the
work's ``env`` names (``env: {LR: "{lr}"}``). :func:`params` reads them.
Reports go to ``$ORCHID_PROGRESS_FILE`` (JSON lines) that the agents read; a pruned
trial is stopped like a cancelled job. Outside Orchid (no such file) they are ignored.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from orchid import jobvars


def params() -> dict[str, Any]:
    """This job's arguments: the trial's parameters (and the work's fixed ones)."""
    path = jobvars.find(jobvars.ARGS_FILE)
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return dict(json.load(f))
    return dict(json.loads(jobvars.find(jobvars.ARGS) or "{}"))


def report(value: float, step: int) -> None:
    """Record the objective's value after ``step`` (an epoch, a number of samples, ...)."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a whole number >= 0; got {step!r}")
    if not math.isfinite(value):
        raise ValueError(f"the value must be a finite number; got {value!r}")
    path = jobvars.find(jobvars.PROGRESS_FILE)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, "value": float(value)}) + "\n")
        f.flush()
