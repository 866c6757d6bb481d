"""`neuralct stability`: the report folder of a run or of an untrained model."""

from __future__ import annotations

import json
from pathlib import Path

from neuralct.cli import main
from neuralct.train.config import FitConfig
from neuralct.train.run import fit

SPIRALS = {
    "dataset": "spirals",
    "hidden": 6,
    "epochs": 2,
    "batch_size": 16,
    "dataset_options": {"size": 48, "length": 10},
}
FIGURES = ("jacobian", "regions", "lyapunov", "gradients", "robustness")


def test_a_continuous_model_gets_every_section(tmp_path: Path, capsys) -> None:
    fit(FitConfig(model="ltc", **SPIRALS), tmp_path / "run")
    assert main(["stability", str(tmp_path / "run"), "--samples", "6"]) == 0
    out = tmp_path / "run" / "stability"
    assert f"report: {out / 'report.md'}" in capsys.readouterr().out
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 10_000 and (out / f"{name}.svg").exists(), name
    numbers = json.loads((out / "numbers.json").read_text())
    exponents = numbers["lyapunov"]["exponents"]
    assert exponents == sorted(exponents, reverse=True) and len(exponents) == 3
    steps = numbers["regions"]["largest_stable_step"]
    assert steps["euler"] <= steps["rk4"] and steps["implicit_euler"] == "inf"
    report = (out / "report.md").read_text()
    assert "lambda_max = " in report and "Largest stable step per solver" in report and "| clean |" in report
    for name in FIGURES:
        assert f"({name}.png)" in report


def test_a_jump_model_gets_the_robustness_study_and_an_untrained_config_works(tmp_path: Path) -> None:
    fit(FitConfig(model="gru_delta", **SPIRALS), tmp_path / "run")
    assert main(["stability", str(tmp_path / "run"), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "Skipped: GRUDelta is not one ODE over the series" in report and "| clean |" in report
    (tmp_path / "ncde.json").write_text(json.dumps({"model": "ncde", **SPIRALS}))
    assert main(["stability", "--config", str(tmp_path / "ncde.json"), "--out", str(tmp_path / "untrained")]) == 0
    numbers = json.loads((tmp_path / "untrained" / "numbers.json").read_text())
    assert numbers["trained"] is False and "jacobian" in numbers


def test_a_report_needs_exactly_one_subject(tmp_path: Path, capsys) -> None:
    assert main(["stability"]) == 2
    assert "exactly one of RUN_DIR" in capsys.readouterr().err
    assert main(["stability", str(tmp_path)]) == 2
    assert "has no config.json" in capsys.readouterr().err
