"""`orchid graph ID`: the task-level graph of a workflow as SVG, PNG, DOT or Mermaid."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from orchid.cli.common import (
    DbOpt,
    UrlOpt,
    WorkflowId,
    _backend,
    app,
    err,
)

Format = Literal["svg", "png", "dot", "mermaid"]


@app.command()
def graph(
    workflow_id: WorkflowId,
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="svg, png, dot (Graphviz) or mermaid")
    ] = "svg",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to this file (default: stdout)")
    ] = None,
    db: DbOpt = None,
    url: UrlOpt = None,
) -> None:
    """Draw a workflow's works, their dependencies and their progress, for reports."""
    from orchid.graph.render import to_dot, to_mermaid, to_svg

    with _backend(url, db) as backend:
        g = backend.graph(workflow_id)
    if fmt == "png":
        from orchid.graph.png import to_png

        data = to_png(g)
        if output is None and sys.stdout.isatty():
            err.print("a PNG is binary: use --output FILE (or redirect stdout)")
            raise typer.Exit(2)
    else:
        text = {"svg": to_svg, "dot": to_dot, "mermaid": to_mermaid}[fmt](g)
        data = (text if text.endswith("\n") else text + "\n").encode()
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        output.write_bytes(data)
        err.print(f"workflow {workflow_id}: {fmt} graph written to {output}")
