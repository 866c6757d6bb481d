"""Every registered model, through one suite: what the model interface promises, checked the same
way for each (and for each variant whose numerics or structure differ).

- the prediction is `[B, O]` and finite on an irregular batch (unequal lengths, gaps of their own,
  missing values in every channel);
- gradients reach every parameter, finite and nonzero;
- a sample's prediction does not depend on its batch mates or on the padding;
- a continuous model runs under every registered solver that accepts its term, and the adaptive
  ones agree with a tight reference solve.
"""

from __future__ import annotations

import pytest
import torch

import neuralct as nct
from neuralct import registry
from neuralct.data import IrregularBatch, Series, collate
from neuralct.errors import IncompatibleTermError
from neuralct.models.base import AbstractContinuousModel, SolveOptions

F64 = torch.float64
CHANNELS, HIDDEN, OUTPUTS = 2, 5, 3
# Small sizes where a model's defaults are wide, and the variants that change its structure.
SMALL = {
    "cfc": {"backbone_units": 8, "backbone_layers": 2},
    "ncde": {"width": 8},
    "ancde": {"width": 8, "attention_hidden": 8},
    "ode_rnn": {"flow_width": 8},
    "s4d": {"state": 4},
    "lssl": {"state": 4},
    "hope": {"state": 4},
    "deep_ssm": {"state": 4},
}
VARIANTS = {
    "cfc": [{"mode": mode} for mode in ("default", "no_gate", "pure")],
    "ancde": [{"attention": attention} for attention in ("soft", "timewise")],
    "deep_ssm": [{"layer": layer} for layer in ("s4d", "lssl", "hope")],
    "s4d": [{"readout": "last"}, {"readout": "mean", "norm": "batch"}],
}
CASES = [
    pytest.param(name, options, id=f"{name}-{'-'.join(map(str, options.values()))}" if options else name)
    for name in registry.names("model")
    for options in VARIANTS.get(name, [{}])
]


def _model(name: str, options: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    model = registry.model(name, channels=CHANNELS, hidden=HIDDEN, outputs=OUTPUTS, **SMALL.get(name, {}), **options)
    return model.to(F64).eval()


def _batch() -> IrregularBatch:
    generator = torch.Generator().manual_seed(5)
    series = []
    for length in (7, 4, 6):
        times = torch.cumsum(0.3 + torch.rand(length, generator=generator, dtype=F64), 0)
        values = torch.randn(length, CHANNELS, generator=generator, dtype=F64)
        missing = torch.rand(length, CHANNELS, generator=generator) < 0.4
        missing[:, 0] &= ~missing[:, 1]  # at least one channel observed at every time
        values[missing] = float("nan")
        series.append(Series(times, values))
    return collate(series)


@pytest.mark.parametrize(("name", "options"), CASES)
def test_the_prediction_is_one_finite_row_per_sample(name: str, options: dict) -> None:
    prediction = _model(name, options)(_batch())
    assert prediction.shape == (3, OUTPUTS) and prediction.dtype == F64
    assert bool(torch.isfinite(prediction).all())


@pytest.mark.parametrize(("name", "options"), CASES)
def test_gradients_reach_every_parameter(name: str, options: dict) -> None:
    model = _model(name, options).train()
    model(_batch()).square().sum().backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert bool(torch.isfinite(parameter.grad).all()), parameter_name
        assert float(parameter.grad.abs().sum()) > 0, parameter_name


@pytest.mark.parametrize(("name", "options"), CASES)
def test_a_sample_does_not_depend_on_its_batch_mates_or_the_padding(name: str, options: dict) -> None:
    model, batch = _model(name, options), _batch()
    together = model(batch)
    for b in range(batch.batch_size):
        alone = model(batch.select([b]))  # its own length: no padding
        torch.testing.assert_close(together[b : b + 1], alone, atol=1e-9, rtol=1e-9)


def _solvers_for(model: AbstractContinuousModel, batch: IrregularBatch) -> list[tuple[str, nct.AbstractSolver]]:
    """Every registered solver (with its default options) that accepts the model's term."""
    term = model.term(batch)
    found = []
    for name in registry.names("solver"):
        if ":" in name:  # peer backends: compared in their own tests
            continue
        try:
            solver = registry.solver(name)
            solver.check_term(term)
        except (IncompatibleTermError, TypeError, ValueError):
            continue
        found.append((name, solver))
    return found


CONTINUOUS = [case for case in CASES if case.values[0] in ("ltc", "ncde", "ancde", "noisy_rnn")]
STEPS = 100_000


@pytest.mark.parametrize(("name", "options"), CONTINUOUS)
def test_every_solver_that_accepts_the_term_runs_and_adaptive_ones_agree(name: str, options: dict) -> None:
    # Fixed-step solvers (and implicit Euler, whose steps each solve a Newton system) take steps of
    # 0.25 and must stay finite; adaptive ones must agree with Dopri5 at rtol 1e-10 to 100 times
    # their rtol (1e-7 from order 5, 1e-5 from order 3, else 1e-3: similar step counts).
    # SDE: finite only, each solver draws its own noise.
    model, batch = _model(name, options), _batch()
    assert isinstance(model, AbstractContinuousModel)
    solvers = _solvers_for(model, batch)
    assert solvers, f"no registered solver accepts the term of {name}"
    tight = SolveOptions(nct.Dopri5(), nct.PIDController(rtol=1e-10, atol=1e-12), max_steps=STEPS)
    reference = None if _stochastic(model, batch) else model.run(batch, tight).predictions
    for solver_name, solver in solvers:
        adaptive = solver.adaptive and solver.error_order is not None and solver_name != "implicit_euler"
        rtol = 1e-7 if solver.order >= 5 else 1e-5 if solver.order >= 3 else 1e-3
        controller = nct.PIDController(rtol=rtol, atol=rtol / 100) if adaptive else nct.ConstantStep(0.25)
        predictions = model.run(batch, SolveOptions(solver, controller, max_steps=STEPS)).predictions
        assert bool(torch.isfinite(predictions).all()), solver_name
        if reference is not None and adaptive and solver_name != "log_ode":  # log-ODE: exact to its window's order
            torch.testing.assert_close(predictions, reference, atol=100 * rtol, rtol=100 * rtol, msg=solver_name)


def _stochastic(model: AbstractContinuousModel, batch: IrregularBatch) -> bool:
    return isinstance(model.term(batch), nct.SDETerm)
