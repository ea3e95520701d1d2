"""Python side of the demo pipeline: the summary work's function."""

from __future__ import annotations


def summarise(measured: int, patches: int) -> dict[str, int]:
    """The summary work: called with the counts bound from the measure work."""
    return {"patches_measured": measured, "patches": patches}
