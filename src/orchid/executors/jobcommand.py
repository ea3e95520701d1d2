"""The one place that turns a :class:`JobSpec` into the command line a job runs.

Every executor that starts a process (local, Dask workers, PanDA pilots, HTCondor
starters) asks :func:`job_command` for the argv and the environment variables that
the payload needs on top of the job's own ``ORCHID_*`` ones (see
:func:`orchid.executors._process.build_env`):

- ``command`` payloads: the argv with ``{arg}`` placeholders rendered (quoted for a shell
  where the item is an ``sh -c`` script: :mod:`orchid.core.placeholders`);
- ``function`` payloads: ``python -m orchid.executors.wrapper`` with ``ORCHID_FUNCTION``
  naming the function;
- Function-as-a-Task jobs are ``command`` payloads running the ``orchid-job`` console
  script: the one beside ``python`` when there is one (a virtualenv), else from ``PATH``;
- ``noop`` payloads: no command at all (executors succeed them without a process).

``python`` is the interpreter a bare ``python``/``python3`` program means on the node
that runs the job: this interpreter for local and Dask jobs, a configured name for
grid and batch jobs, whose nodes have their own.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from orchid import jobvars
from orchid.core.placeholders import UnsafePlaceholder, render_command
from orchid.executors._process import PYTHON_NAMES, StartError
from orchid.executors.base import JobSpec

WRAPPER_MODULE = "orchid.executors.wrapper"
JOB_COMMAND = "orchid-job"  # the Function-as-a-Task job wrapper (orchid.fat.job)


@dataclass(frozen=True)
class JobCommand:
    """What to start for one attempt: the argv and the variables the payload adds."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def job_command(spec: JobSpec, *, python: str = sys.executable) -> JobCommand:
    """The command line of one attempt; raises :class:`StartError` if it has none."""
    payload = spec.payload
    if payload.kind == "command":
        try:
            argv = render_command(payload.command, spec.args)
        except UnsafePlaceholder as exc:
            raise StartError(str(exc)) from exc
        if not argv:
            raise StartError("empty command")
        if argv[0] in PYTHON_NAMES:
            argv[0] = python
        elif argv[0] == JOB_COMMAND and os.path.isabs(python):
            # Function-as-a-Task: the orchid-job installed beside that interpreter, if any
            beside = Path(python).parent / JOB_COMMAND
            if beside.exists():
                argv[0] = str(beside)
        return JobCommand(argv)
    if payload.kind == "function":
        if not payload.function:
            raise StartError("function payload without a function")
        return JobCommand([python, "-m", WRAPPER_MODULE], {jobvars.FUNCTION: payload.function})
    raise StartError(f"a {payload.kind!r} payload runs no command")
