"""The task-level graph of a workflow: built from its template and works, laid out, and drawn.

One module for every picture of a workflow: the monitor pages (SVG), ``orchid graph``
(SVG, PNG, DOT, Mermaid) and the API (``GET /workflows/{id}/graph``, JSON).
"""

from orchid.graph.model import Edge, LoopBox, NestBox, Node, TaskGraph, build

__all__ = ["Edge", "LoopBox", "NestBox", "Node", "TaskGraph", "build"]
