"""The log-ODE method for ANCDE: the control form on [x; h; z] against the drift form on [h; z],
the method's convergence orders against a tight drift solve, gradients, the command line and
the named errors."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import neuralct as nct
from neuralct.cli import main
from neuralct.data.series import Series, collate
from neuralct.errors import IncompatibleTermError
from neuralct.models.ancde import ANCDE, takes_control_form
from neuralct.models.base import SolveOptions
from neuralct.models.log_ode import LogODE

F64 = torch.float64
ATTENTIONS = ("soft", "timewise")
TIGHT = SolveOptions(nct.Dopri5(), nct.PIDController(rtol=1e-12, atol=1e-12))


@dataclass(frozen=True)
class ControlRK4(nct.RK4):
    """RK4 restricted to `ControlTerm`s, so that ANCDE runs in its control form under it."""

    term_types = (nct.ControlTerm,)


@dataclass(frozen=True)
class ControlDopri5(nct.Dopri5):
    """Dopri5 restricted to `ControlTerm`s, so that ANCDE runs in its control form under it."""

    term_types = (nct.ControlTerm,)


def _series(length: int, seed: int) -> Series:
    gen = torch.Generator().manual_seed(seed)
    times = 0.3 * seed + (0.2 + torch.rand(length, generator=gen, dtype=F64)).cumsum(0)
    return Series(times, torch.randn(length, 2, generator=gen, dtype=F64))


def _batch():
    return collate([_series(n, seed) for seed, n in enumerate((8, 5, 3))])


def _model(attention: str, **options) -> ANCDE:
    torch.manual_seed(1)
    return ANCDE(2, 4, 3, attention=attention, attention_hidden=8, width=16, **options).double()


def test_only_a_solver_that_refuses_the_drift_form_gets_the_control_form() -> None:
    assert takes_control_form(LogODE()) and takes_control_form(ControlRK4())
    assert not any(takes_control_form(solver) for solver in (nct.RK4(), nct.Tsit5(), nct.EulerMaruyama()))


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize(
    ("interpolation", "drift", "control", "tol"),
    [
        # On a linear path RK4's stage values of x are X at the stage times: the two forms take
        # the same steps to rounding (measured 2e-16).
        ("linear", SolveOptions(nct.RK4(), nct.KnotToKnot()), SolveOptions(ControlRK4(), nct.KnotToKnot()), 1e-13),
        # A cubic path, adaptive steps at tolerance 1e-12: each form within its own error of the
        # solution (measured 4.5e-10; the fields' ReLU kinks cost both many rejected steps).
        ("limited_hermite", TIGHT, SolveOptions(ControlDopri5(), TIGHT.controller), 2e-9),
    ],
)
def test_the_control_form_solves_the_same_model_as_the_drift_form(attention, interpolation, drift, control, tol):
    model, batch = _model(attention, interpolation=interpolation), _batch()
    with torch.no_grad():
        expected, got = model.solution(batch, drift), model.solution(batch, control)
        predictions = model.readout(got, batch)
        assert (predictions - model.readout(expected, batch)).abs().max() < tol
        # The states come back on [h; z] in both forms, equal at every observation.
        assert (got.ys - expected.ys).abs().max() < 10 * tol
        assert (predictions - model.head(model.initial_state(batch)[:, 3:])).abs().min() > 1e-3  # z moved


def _smooth_fields(model: ANCDE) -> ANCDE:
    """Tanh for the ReLUs of both fields: the method's order needs smooth vector fields (with
    ReLU kinks, depth 2's observed orders wander between 1.2 and 5)."""
    for net in (model.bottom.net, model.top.net):
        for index, layer in enumerate(net):
            if isinstance(layer, nn.ReLU):
                net[index] = nn.Tanh()
    return model


@torch.no_grad()
def _log_ode_errors(model: ANCDE, batch, depth: int) -> list[float]:
    """Max errors of the final [h; z] with windows of 8, 4, 2 gaps against a tight drift solve.
    One RK4 step per gap inside the windows: halving it changes no error's third digit."""
    reference = model.solution(batch, TIGHT).ys[:, -1]
    errors = []
    for window in (8, 4, 2):
        options = SolveOptions(LogODE(window, depth, nct.RK4()), nct.ConstantStep(1 / 64))
        errors.append(float((model.solution(batch, options).ys[:, -1] - reference).abs().max()))
    return errors


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_the_log_ode_method_converges_to_the_ancde_faster_with_depth_two(attention):
    # A window's Lévy area along a smooth path is O(h^3): depth 1 has global error O(h^2),
    # depth 2 cancels it (measured slopes: depth 1 2.0, 2.3; depth 2 4.1, 4.6). A wrong term of
    # the control form converges to another solution, a wrong bracket falls back to slope 2.
    times = torch.linspace(0, 1, 65, dtype=F64)
    values = torch.stack([torch.sin(2 * math.pi * times), torch.cos(3 * math.pi * times)], -1)
    batch = collate([Series(times, values)])
    model = _smooth_fields(_model(attention, interpolation="linear"))
    depth1, depth2 = _log_ode_errors(model, batch, 1), _log_ode_errors(model, batch, 2)
    slopes1, slopes2 = -np.diff(np.log2(depth1)), -np.diff(np.log2(depth2))
    assert np.all((slopes1 > 1.7) & (slopes1 < 2.6)), depth1
    assert np.all((slopes2 > 3.6) & (slopes2 < 5.0)), depth2
    assert all(d2 < d1 / 10 for d1, d2 in zip(depth1, depth2))


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_gradients_reach_every_parameter_through_the_log_ode_solve(attention):
    model, batch = _model(attention), _batch()
    model(batch, SolveOptions(LogODE(window=3, solver=nct.RK4()), nct.KnotToKnot())).square().sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.isfinite().all(), name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_gradients_of_the_log_ode_solve_pass_gradcheck(attention):
    times = [_series(5, 6).times, _series(4, 7).times]
    torch.manual_seed(2)
    model = ANCDE(1, 2, 1, attention=attention, attention_hidden=3, width=3, depth=1).double()
    options = SolveOptions(LogODE(window=2, solver=nct.RK4()), nct.KnotToKnot())

    def predictions(first: torch.Tensor, second: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        batch = collate([Series(times[0], first), Series(times[1], second)])
        return torch.func.functional_call(model, {"bottom.net.0.weight": weight}, (batch, options))

    inputs = (torch.randn(5, 1, dtype=F64), torch.randn(4, 1, dtype=F64), model.bottom.net[0].weight.detach().clone())
    assert torch.autograd.gradcheck(predictions, tuple(x.requires_grad_(True) for x in inputs))


def test_a_solver_that_takes_neither_form_still_names_the_drift_term():
    with pytest.raises(IncompatibleTermError, match="EulerMaruyama cannot integrate an AttentiveTerm"):
        _model("soft").run(_batch(), SolveOptions(nct.EulerMaruyama(), nct.ConstantStep(0.1)))


SMALL = ["--hidden", "8", "--epochs", "1", "--batch-size", "64", "--missing", "0"]


@pytest.mark.parametrize(
    ("dataset", "sizes", "evaluations"),
    [
        # One RK4 step per window: 4 evaluations and a fresh first slope (the field jumps at each
        # window end). Spirals of 4 to 9 values have 1 or 2 windows of 4 gaps: 5 or 10 per series.
        ("spirals", {"size": 24, "length": 9}, (5, 10)),
        # 6 to 28 gaps: 2 to 7 windows. About a minute on a 2-core CPU.
        pytest.param("japanese_vowels", {}, (10, 35), marks=pytest.mark.slow),
    ],
)
def test_fit_with_log_ode_then_evaluate_accepts_the_run(tmp_path: Path, capsys, dataset, sizes, evaluations) -> None:
    config = tmp_path / "small.json"
    options = {"attention_hidden": 4, "width": 4, "depth": 1}
    config.write_text(json.dumps({"model_options": options, "dataset_options": sizes}))
    run = tmp_path / "run"
    flags = ["--config", str(config), "--model", "ancde", "--dataset", dataset, *SMALL, "--out", str(run)]
    assert main(["fit", *flags, "--solver", "log_ode", "--window", "4", "--inner-solver", "rk4", "--quiet"]) == 0
    result = json.loads((run / "result.json").read_text())
    assert json.loads((run / "config.json").read_text())["solver_options"] == {"solver": "rk4", "window": 4}
    assert result["test_failed"] == 0 and evaluations[0] <= result["test_vf_evals"] <= evaluations[1]
    capsys.readouterr()
    assert main(["evaluate", str(run), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == result["test_accuracy"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"window": 0}, "`window` must be a positive int; got 0"),
        ({"depth": 3}, "`depth` must be an int in [1, 2]; got 3"),
    ],
)
def test_a_bad_log_ode_option_for_ancde_is_refused_by_name(tmp_path: Path, capsys, options, message) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"model": "ancde", "solver": "log_ode", "solver_options": options}))
    arguments = ["fit", "--config", str(config), "--dataset", "spirals", *SMALL, "--out", str(tmp_path / "run")]
    assert main(arguments) == 2
    assert message in capsys.readouterr().err
