"""iDDS requests as data: what an iDDS 2.6 client submits, read into an Orchid template.

The iDDS client serialises its ``Workflow`` and ``Work`` objects as JSON that names their
Python classes (``{"class": ..., "module": ..., "attributes": {...}}``, iDDS's ``DictClass``
encoding) and the iDDS server imports those classes by name. Orchid never does: the JSON
is read here as plain data, every class it names must be on :data:`ALLOWED`, and anything
else is refused with a :class:`IddsError` that names the class. The result is an ordinary
template dict, validated afterwards like any other (``engine.submit``).

The concept map (docs/from-idds.md): a request is a workflow, a transform a work, a
``DomaPanDAWork``'s dependency map the work's listed jobs with their parents (a job-level
DAG across works), a ``Condition`` between works ``after`` with a ``trigger``, an HPO
request an ``hpo`` work in pull mode, a stage-in request a work fed by a data manager.
Pure: no I/O; ``zlib`` and ``base64`` only to read what the client packed into text.
"""

from __future__ import annotations

from orchid.core.idds._data import (
    ALLOWED,
    CONTENT_STATUS,
    ENUMS,
    REQUEST_STATUS,
    REQUEST_TYPES,
    TRANSFORM_STATUS,
    IddsError,
    check_classes,
    job_name,
    work_name,
)
from orchid.core.idds._requests import translate_request, translate_transform

__all__ = [
    "ALLOWED",
    "CONTENT_STATUS",
    "ENUMS",
    "REQUEST_STATUS",
    "REQUEST_TYPES",
    "TRANSFORM_STATUS",
    "IddsError",
    "check_classes",
    "job_name",
    "translate_request",
    "translate_transform",
    "work_name",
]
