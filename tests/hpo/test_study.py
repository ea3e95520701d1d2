"""``orchid.hpo.Study``: a study built in Python, checked, and run here."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchid import hpo
from orchid.errors import TemplateError


def test_a_bad_study_names_the_field(tmp_path: Path) -> None:
    study = hpo.Study("s", function="m:f", space={"lr": hpo.real(0.0, 1.0, log=True)}, max_trials=3)
    with pytest.raises(TemplateError, match=r"works\[0\]\(tune\)\.hpo\.space\.lr\.log"):
        study.template()
    with pytest.raises(TemplateError, match="needs one payload"):
        hpo.Study("s", space={"x": hpo.integer(1, 3)}, max_trials=3).template()


def test_a_study_runs_here_with_a_function_objective(tmp_path: Path) -> None:
    (tmp_path / "objective.py").write_text(
        "def f(x: float, kind: str, k: int = 0) -> dict:\n"
        "    return {'loss': (x - 0.25) ** 2 + k, 'kind': kind}\n"
    )
    study = hpo.Study(
        "python-study",
        function="objective:f",
        space={
            "x": hpo.real(-1.0, 1.0),
            "kind": hpo.choice("a", "b"),
            "k": hpo.integer(0, 2, when="kind == 'b'"),
        },
        max_trials=4,
        parallel=2,
        strategy="random",
        seed=3,
    )
    result = study.run(home=tmp_path / "home", workers=2, base_dir=tmp_path)
    assert result.status == "succeeded"
    assert len(result.trials) == 4 and all(t["status"] == "complete" for t in result.trials)
    assert result.best is not None
    assert result.best["value"] == min(t["values"][0] for t in result.trials)
