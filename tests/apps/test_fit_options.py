"""Every numerics option of a run reachable from a config and the command line: the gradient
strategy, the dtype, `torch.compile`, the first step and a CDE's control interpolation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import neuralct as nct
from neuralct.cli import _config as cli_config
from neuralct.cli import main, parser
from neuralct.errors import InvalidInputError
from neuralct.models.base import SolveOptions
from neuralct.train.build import build_model
from neuralct.train.config import FitConfig
from neuralct.train.numerics import gradient_from_spec

TINY = ["--dataset", "spirals", "--hidden", "4", "--epochs", "1", "--batch-size", "16"]
SIZES = {"dataset_options": {"size": 24, "length": 6}}


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("backprop", nct.Backprop()),
        ("checkpoint:8", nct.Backprop(checkpoint_every=8)),
        ("backsolve", nct.Backsolve()),
        ("backsolve-seminorm", nct.Backsolve(seminorm=True)),
    ],
)
def test_gradient_specs_name_the_gradient_objects(spec: str, expected: object) -> None:
    assert gradient_from_spec(spec) == expected


@pytest.mark.parametrize("spec", ["adjoint", "checkpoint:0", "checkpoint:x", "backsolve:2", "checkpoint"])
def test_a_bad_gradient_spec_lists_the_valid_ones(spec: str) -> None:
    with pytest.raises(InvalidInputError, match="`gradient`"):
        FitConfig(gradient=spec)


def test_without_a_solver_the_gradient_dt0_and_compile_change_only_the_models_own_numerics() -> None:
    config = FitConfig(model="ncde", dataset="spirals", gradient="backsolve", dt0=0.01, hidden=4)
    model = build_model(config, _spirals())
    own = model.default_solve_options()
    options = config.solve_options(model)
    assert options.solver == own.solver and options.controller == own.controller
    assert options.gradient == nct.Backsolve() and options.dt0 == 0.01 and not options.compile
    assert FitConfig(model="ncde", dataset="spirals").solve_options(model) is None  # nothing changed


def test_numerics_options_for_a_model_that_solves_nothing_are_refused_by_name() -> None:
    config = FitConfig(model="gru_d", dataset="spirals", gradient="backsolve", hidden=4)
    with pytest.raises(InvalidInputError, match="`gradient`.*'gru_d' does not"):
        config.solve_options(build_model(config, _spirals()))


def test_a_solver_takes_every_numerics_key() -> None:
    options = FitConfig(solver="tsit5", gradient="checkpoint:4", dt0=0.1, compile=True, max_steps=99).solve_options()
    assert options == SolveOptions(
        nct.Tsit5(),
        nct.PIDController(rtol=1e-3, atol=1e-6),
        gradient=nct.Backprop(checkpoint_every=4),
        dt0=0.1,
        max_steps=99,
        compile=True,
    )


def test_interpolation_reaches_a_cde_model_and_is_refused_for_others() -> None:
    model = build_model(FitConfig(model="ncde", dataset="spirals", interpolation="linear", hidden=4), _spirals())
    assert model.control.interpolation == "linear"
    with pytest.raises(InvalidInputError, match="`interpolation` sets the control path of a CDE model.*'ltc'"):
        build_model(FitConfig(model="ltc", dataset="spirals", interpolation="linear", hidden=4), _spirals())
    with pytest.raises(InvalidInputError, match="`interpolation` must be one of"):
        FitConfig(interpolation="spline")


def test_fit_with_backsolve_gradients_trains_end_to_end(tmp_path: Path, capsys) -> None:
    config = _config_file(tmp_path)
    flags = ["--model", "ncde", "--solver", "rk4", "--gradient", "backsolve", *TINY]
    assert main(["fit", "--config", str(config), *flags, "--out", str(tmp_path / "run")]) == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["test_failed"] == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["gradient"] == "backsolve"


def test_fit_in_float64_keeps_the_model_and_data_in_float64(tmp_path: Path, monkeypatch) -> None:
    from neuralct.train import loop

    seen = []
    real = loop.score

    def spy(run, model, batch, options, strict):
        seen.append((batch.values.dtype, next(model.parameters()).dtype))
        return real(run, model, batch, options, strict=strict)

    monkeypatch.setattr(loop, "score", spy)
    flags = ["--model", "ode_rnn", "--dtype", "float64", *TINY]
    assert main(["fit", "--config", str(_config_file(tmp_path)), *flags, "--out", str(tmp_path / "run")]) == 0
    assert seen and set(seen) == {(torch.float64, torch.float64)}
    assert main(["evaluate", str(tmp_path / "run")]) == 0  # the saved dtype is used again


def test_fit_with_compile_runs_the_compiled_step(tmp_path: Path, monkeypatch) -> None:
    from neuralct._loop import compile as _loop

    compiled = []
    real = _loop._compiled_attempt_step

    def counted():
        compiled.append(True)
        return real()

    monkeypatch.setattr(_loop, "_compiled_attempt_step", counted)
    flags = ["--model", "ncde", "--solver", "rk4", "--compile", *TINY]
    assert main(["fit", "--config", str(_config_file(tmp_path)), *flags, "--out", str(tmp_path / "run")]) == 0
    assert compiled  # the solves went through torch.compile
    assert json.loads((tmp_path / "run" / "result.json").read_text())["test_failed"] == 0


def _spirals():
    from neuralct.data.datasets import load

    return load("spirals", "train", size=8, length=6)


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "sizes.json"
    path.write_text(json.dumps(SIZES))
    return path


def test_background_workers_prepare_the_same_minibatches_as_the_training_process(tmp_path: Path, monkeypatch) -> None:
    from neuralct.data import batching
    from neuralct.train import fit

    loaders = []
    real = batching.DataLoader

    def counted(*args, **kwargs):
        loaders.append(kwargs["num_workers"])
        return real(*args, **kwargs)

    monkeypatch.setattr(batching, "DataLoader", counted)
    config = FitConfig(model="gru_delta", dataset="spirals", hidden=4, epochs=2, batch_size=8, **SIZES)
    alone = fit(config, tmp_path / "alone")
    assert loaders == []
    helped = fit(config.replace(workers=2), tmp_path / "helped")
    assert loaders == [2, 2]  # one loader of 2 processes per epoch
    assert helped == alone  # the same minibatches in the same order: the same run
    rows = [json.loads(line) for line in (tmp_path / "helped" / "metrics.jsonl").read_text().splitlines()]
    assert [row["train_loss"] for row in rows] == [
        json.loads(line)["train_loss"] for line in (tmp_path / "alone" / "metrics.jsonl").read_text().splitlines()
    ]


def test_window_is_the_log_ode_solvers_window(tmp_path: Path) -> None:
    flags = ["--model", "ncde", "--solver", "log_ode", "--window", "3", "--inner-solver", "rk4", *TINY]
    assert main(["fit", "--config", str(_config_file(tmp_path)), *flags, "--out", str(tmp_path / "run")]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["solver_options"] == {"solver": "rk4", "window": 3}
    assert json.loads((tmp_path / "run" / "result.json").read_text())["test_failed"] == 0


def test_window_flag_adds_to_the_config_files_solver_options(tmp_path: Path) -> None:
    # A config with log-ODE depth 1 and `--window 16` on the command line runs depth 1 at window 16.
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": "ncde", "solver": "log_ode", "solver_options": {"depth": 1}}))
    args = parser().parse_args(["fit", "--config", str(config), "--window", "16"])
    assert dict(cli_config(args).solver_options) == {"depth": 1, "window": 16}
    args = parser().parse_args(["fit", "--config", str(config), "--solver", "log_ode", "--inner-solver", "rk4"])
    assert dict(cli_config(args).solver_options) == {"depth": 1, "solver": "rk4"}
