"""`neuralct stability`: the report folder of a run or of an untrained model, with the sections
that apply to the model and text that quotes the numbers its figures show."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

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
STIFFNESS = re.compile(
    r"Stiffness ratio over the (\d+) points with a decaying eigenvalue: median (\S+), "
    r"90th percentile (\S+) \(max over the (\d+) points (\S+)\)\."
)


def _stiffness_text_matches_the_saved_arrays(out: Path) -> None:
    """The median, 90th percentile and max quoted in report.md are those of jacobian.npz's ratios."""
    found = STIFFNESS.search((out / "report.md").read_text())
    assert found is not None, "report.md quotes no stiffness statistics"
    count, median, p90, count_again, largest = found.groups()
    ratios = np.load(out / "jacobian.npz")["stiffness"]
    finite = ratios[np.isfinite(ratios)]
    assert int(count) == int(count_again) == finite.size > 0
    # Quoted to 3 significant digits: equal to within rounding, on either side.
    for quoted, exact in zip((median, p90, largest), (np.median(finite), np.percentile(finite, 90), finite.max())):
        assert float(quoted) == pytest.approx(exact, rel=5e-3)


def test_an_ode_model_gets_every_section_and_quotes_its_figures(tmp_path: Path, capsys) -> None:
    fit(FitConfig(model="ltc", **SPIRALS), tmp_path / "run")
    assert main(["stability", str(tmp_path / "run"), "--samples", "6"]) == 0
    out = tmp_path / "run" / "stability"
    assert f"report: {out / 'report.md'}" in capsys.readouterr().out
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 10_000 and (out / f"{name}.svg").exists(), name
    numbers = json.loads((out / "numbers.json").read_text())
    assert numbers["sections"] == ["jacobian", "regions", "lyapunov", "robustness", "solver_swap"]
    assert numbers["skipped"] == {}
    exponents = numbers["lyapunov"]["exponents"]
    assert exponents == sorted(exponents, reverse=True) and len(exponents) == 3
    steps = numbers["regions"]["largest_stable_step"]
    assert steps["euler"] <= steps["rk4"] and steps["implicit_euler"] == "inf"
    assert [row["label"] for row in numbers["solver_swap"]] == ["trained", "rk4", "dopri5"]
    report = (out / "report.md").read_text()
    assert "lambda_max = " in report and "Largest stable step per solver" in report and "| clean |" in report
    assert "method_of_steps:rk4 (IncompatibleTermError" in report  # named as not tried, with why
    for name in FIGURES:
        assert f"({name}.png)" in report
    _stiffness_text_matches_the_saved_arrays(out)


def test_a_delay_model_gets_its_linearised_field_and_only_solvers_that_integrate_it(tmp_path: Path) -> None:
    # An untrained model has the same sections as a trained one, without the cost of training it.
    (tmp_path / "tau_gru.json").write_text(json.dumps({"model": "tau_gru", **SPIRALS}))
    out = tmp_path / "report"
    assert main(["stability", "--config", str(tmp_path / "tau_gru.json"), "--out", str(out), "--samples", "4"]) == 0
    numbers = json.loads((out / "numbers.json").read_text())
    assert numbers["sections"] == ["jacobian", "regions", "robustness", "solver_swap"]
    assert "whole history" in numbers["skipped"]["lyapunov"]
    assert set(numbers["regions"]["largest_stable_step"]) == {"euler", "heun", "rk4", "dopri5"}
    swaps = numbers["solver_swap"]
    assert [row["label"] for row in swaps] == [
        "trained",
        "method_of_steps:heun",
        "method_of_steps:rk4",
        "method_of_steps:dopri5",
    ]
    assert all(row["error"] is None and 0 <= row["accuracy"] <= 1 for row in swaps)
    report = (out / "report.md").read_text()
    assert "Skipped: the state of a delay equation is its whole history" in report
    assert "rk4 (IncompatibleTermError: solver RK4 cannot integrate a DelayTerm" in report
    assert "| rk4 (" not in report and "failed:" not in report
    halanay = np.load(out / "jacobian.npz")["halanay"]
    assert f"largest {float(halanay.max()):.3g}." in report
    _stiffness_text_matches_the_saved_arrays(out)


def test_a_jump_model_gets_the_robustness_study_and_an_untrained_config_works(tmp_path: Path) -> None:
    fit(FitConfig(model="gru_delta", **SPIRALS), tmp_path / "run")
    assert main(["stability", str(tmp_path / "run"), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "Skipped: GRUDelta jumps at every observation" in report and "| clean |" in report
    numbers = json.loads((tmp_path / "report" / "numbers.json").read_text())
    assert numbers["sections"] == ["robustness", "solver_swap"]
    assert set(numbers["skipped"]) == {"jacobian", "regions", "lyapunov"}
    (tmp_path / "ncde.json").write_text(json.dumps({"model": "ncde", **SPIRALS}))
    assert main(["stability", "--config", str(tmp_path / "ncde.json"), "--out", str(tmp_path / "untrained")]) == 0
    numbers = json.loads((tmp_path / "untrained" / "numbers.json").read_text())
    assert numbers["trained"] is False and "jacobian" in numbers
    _stiffness_text_matches_the_saved_arrays(tmp_path / "untrained")


def test_a_report_needs_exactly_one_subject(tmp_path: Path, capsys) -> None:
    assert main(["stability"]) == 2
    assert "exactly one of RUN_DIR" in capsys.readouterr().err
    assert main(["stability", str(tmp_path)]) == 2
    assert "has no config.json" in capsys.readouterr().err
