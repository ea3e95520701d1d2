"""The seam between the callers of Orchid (CLI, Function-as-a-Task, ``hpo.Study``) and an
Orchid, here or through a server: see :mod:`orchid.backend.base`. The two kinds,
:mod:`orchid.backend.embedded` and :mod:`orchid.backend.remote`, are imported by name
(or through :func:`~orchid.backend.choose.from_env`), so that importing this package loads neither."""

from orchid.backend.base import (
    REPORT_KIND,
    Backend,
    FailedJob,
    JobRow,
    WorkflowLine,
    WorkRow,
    extract_traceback,
)
from orchid.backend.choose import from_env

__all__ = [
    "REPORT_KIND",
    "Backend",
    "FailedJob",
    "JobRow",
    "WorkRow",
    "WorkflowLine",
    "extract_traceback",
    "from_env",
]
