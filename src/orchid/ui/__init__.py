"""The monitor: server-rendered pages under ``/ui`` with live updates (server-sent events).

Mounted by the API application (``orchid server``, ``orchid up``) and authenticated like
it (see :mod:`orchid.ui.session`). Pages aggregate in SQL (:mod:`orchid.store.monitor`):
counts, pages of jobs, downsampled series; none ships all the jobs of a workflow.
"""

from orchid.ui.app import create_ui

__all__ = ["create_ui"]
