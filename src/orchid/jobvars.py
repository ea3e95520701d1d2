"""The environment variables Orchid sets for a job, and the one reader of them on the job's
side (the wrapper, the pool's workers, ``orchid.hpo.trial``, Function-as-a-Task jobs).

Executors set them (:func:`orchid.executors._process.job_variables` for processes on this
host and, through it, on a cluster or a grid); docs/templates.md lists them for users.
This module imports nothing of Orchid: it is loaded inside every job.
"""

from __future__ import annotations

import os

JOB_KEY = "ORCHID_JOB_KEY"
"""The attempt's key, ``<workflow>-<job>-<attempt>``."""
WORKFLOW_ID = "ORCHID_WORKFLOW_ID"
"""The workflow's id."""
JOB_ID = "ORCHID_JOB_ID"
"""The job's id."""
JOB_NAME = "ORCHID_JOB_NAME"
"""The job's name in its work."""
ATTEMPT = "ORCHID_ATTEMPT"
"""The attempt's number (1 for the first)."""
WORK = "ORCHID_WORK"
"""The work's name."""
ARGS = "ORCHID_ARGS"
"""The job's arguments as a JSON object (unset when they are too large: see ARGS_FILE)."""
ARGS_FILE = "ORCHID_ARGS_FILE"
"""A file holding the same JSON object."""
RESULT_FILE = "ORCHID_RESULT_FILE"
"""Where the job may write its result, as JSON (else its last stdout line counts)."""
PROGRESS_FILE = "ORCHID_PROGRESS_FILE"
"""Where the job may append intermediate values (``orchid.hpo.trial.report``)."""
FUNCTION = "ORCHID_FUNCTION"
"""A ``function`` payload: ``package.module:function`` for the wrapper to call."""
NODE = "ORCHID_NODE"
"""Dask: the host (and worker) the job runs on; Slurm: the node."""
WORKDIR = "ORCHID_WORKDIR"
"""HTCondor: the folder the job changes to (its payload's workdir)."""
TOKEN = "ORCHID_TOKEN"
"""A work with ``api_token: true``: the job's token for the REST API (also the client's)."""
URL = "ORCHID_URL"
"""The server a job (or the client) reaches."""
HOME = "ORCHID_HOME"
"""Function-as-a-Task jobs of an embedded engine: where its cache is."""
FAT_CACHE = "ORCHID_FAT_CACHE"
"""Function-as-a-Task: where a node keeps the code it fetched (default: the user cache)."""
PANDA_CACHE = "ORCHID_PANDA_CACHE"
"""PanDA jobs: where a node keeps the sandboxes it fetched (default: the temporary folder)."""

IDENTITY = (JOB_KEY, WORKFLOW_ID, JOB_ID, JOB_NAME, ATTEMPT, WORK)
"""The variables that say which attempt runs (set by every executor)."""


def get(name: str, default: str = "") -> str:
    """The value of one of these variables in the job's environment (``default``: unset)."""
    return os.environ.get(name, default)


def find(name: str) -> str | None:
    """The value of one of these variables, or None when it is unset."""
    return os.environ.get(name)
