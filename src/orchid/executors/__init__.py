"""Workload systems that run jobs, behind the :class:`~orchid.executors.base.Executor` Protocol."""

# The public surface: these modules (``from orchid.executors import base``). Listing them
# imports none of them.
__all__ = [
    "base",
    "dask",
    "htcondor",
    "jobcommand",
    "local",
    "null",
    "panda",
    "pandajob",
    "pool",
    "poolworker",
    "registry",
    "remote",
    "runas",
    "sleep",
    "slurm",
    "wrapper",
]
