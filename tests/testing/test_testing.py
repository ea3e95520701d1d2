"""orchid.testing runs a user's workflow in-process and reads the outcome back."""

from __future__ import annotations

from pathlib import Path

from orchid.testing import run_workflow

ROOT = Path(__file__).resolve().parents[2]


def test_runs_an_example_and_exposes_outputs(tmp_path: Path) -> None:
    result = run_workflow(ROOT / "examples" / "loop" / "workflow.yaml", home=tmp_path)
    assert result.status == "succeeded"
    assert len(result.results("evaluate")) == 1  # the last iteration's
    assert abs(result.outputs("answer")["root"] - 2.0945515) < 1e-6


def test_runs_a_decoded_template_with_params(tmp_path: Path) -> None:
    template = {
        "name": "t",
        "parameters": {"xs": [1, 2, 3]},
        "works": [
            {
                "name": "double",
                "command": ["sh", "-c", "echo $(( {x} * 2 ))"],
                "map": {"product": {"x": "${params.xs}"}},
            },
            {"name": "total", "after": ["double"], "noop": True},
        ],
    }
    result = run_workflow(template, params={"xs": [5, 6]}, home=tmp_path)
    assert result.status == "succeeded"
    assert sorted(result.results("double")) == [10, 12]
