"""Neural CDE model: torchcde's cdeint on the same splines, reparameterisation invariance, the
closed form of a linear CDE, the discrete recursion of Euler at the knots, padding and batching
invariance, gradients, named errors and solver swaps."""

from __future__ import annotations

import functools

import pytest
import scipy.linalg
import torch
import torchcde
from _tableaus import ThreeEighths
from torch import nn

import neuralct as nct
from neuralct.data.series import IrregularBatch, Series, collate
from neuralct.errors import InvalidInputError
from neuralct.models.base import SolveOptions
from neuralct.models.ncde import NeuralCDE

F64 = torch.float64
NAN = float("nan")
LENGTHS = (9, 6, 3)
TIGHT = SolveOptions(nct.Dopri5(), nct.PIDController(rtol=1e-10, atol=1e-10))
KNOTS = SolveOptions(nct.Euler(), nct.KnotToKnot())


def _series(length: int, seed: int, missing: bool = True, warp=lambda t: t) -> Series:
    gen = torch.Generator().manual_seed(seed)
    times = (0.3 * seed + (0.2 + torch.rand(length, generator=gen, dtype=F64)).cumsum(0)).sub(0.2)
    values = torch.randn(length, 2, generator=gen, dtype=F64)
    if missing and length > 4:
        values[1, 0] = values[3, 1] = NAN
    return Series(warp(times), values)


def _batch(missing: bool = True, warp=lambda t: t) -> IrregularBatch:
    return collate([_series(n, seed, missing, warp) for seed, n in enumerate(LENGTHS)])


def _model(**options) -> NeuralCDE:
    torch.manual_seed(1)
    return NeuralCDE(2, 5, 3, width=16, **options).double()


class Field(nn.Module):
    """torchcde's calling convention `func(t, z)` around our `f(t, z, args)`."""

    def __init__(self, f: nn.Module):
        super().__init__()
        self.f = f

    def forward(self, t, z):
        return self.f(t, z, None)


def _shared_grid_problem(kind: str):
    """A batch on one shared grid without missing values, and torchcde's spline of the same data."""
    gen = torch.Generator().manual_seed(3)
    times = (0.2 + torch.rand(8, generator=gen, dtype=F64)).cumsum(0)
    values = torch.randn(3, 8, 2, generator=gen, dtype=F64)
    batch = IrregularBatch.from_padded(times, values)
    data = torch.cat([times.expand(3, -1)[..., None], values], dim=-1)  # time is channel 0, as ours
    build = {
        "hermite": torchcde.hermite_cubic_coefficients_with_backward_differences,
        "natural": torchcde.natural_cubic_coeffs,
    }[kind]
    return batch, torchcde.CubicSpline(build(data, times), times), times


@pytest.mark.parametrize("kind", ["hermite", "natural"])
def test_neural_cde_with_dopri5_equals_torchcde_cdeint_on_the_same_spline(kind):
    batch, spline, times = _shared_grid_problem(kind)
    model = _model(interpolation=kind)
    z0 = model.embed(spline.evaluate(times[0]))
    assert torch.allclose(model.initial_state(batch), z0, atol=1e-14, rtol=0)
    theirs = torchcde.cdeint(
        spline, Field(model.field), z0, times, adjoint=False, method="dopri5", rtol=1e-10, atol=1e-10
    )
    ours = model.run(batch, TIGHT).predictions
    assert (ours - model.head(theirs[:, -1])).abs().max() < 1e-6  # two adaptive solvers: measured 1.5e-7


@pytest.mark.parametrize("kind", ["hermite", "natural"])
def test_neural_cde_with_rk4_steps_on_a_grid_equals_torchcde_cdeint(kind):
    """Both take one step of torchdiffeq's "rk4" per grid interval (knots included), through
    the model's own term and initial state."""
    batch, spline, times = _shared_grid_problem(kind)
    model = _model(interpolation=kind)
    grid = torch.cat([times, torch.linspace(float(times[0]), float(times[-1]), 101, dtype=F64)]).unique()
    z0 = model.initial_state(batch)
    fixed = dict(grid_constructor=lambda f, y0, t: t)
    theirs = torchcde.cdeint(spline, Field(model.field), z0, grid, adjoint=False, method="rk4", options=fixed)
    ours = nct.solve(model.term(batch), z0, grid, solver=ThreeEighths(), controller=nct.ConstantStep(1.0))
    assert ours.stats.steps.tolist() == [len(grid) - 1] * 3
    assert (ours.ys - theirs).abs().max() < 1e-6  # measured 1e-14


@pytest.mark.parametrize("options, tol", [(KNOTS, 1e-12), (TIGHT, 1e-7)])  # measured 8e-16, 2.5e-8
def test_without_the_time_channel_a_linear_cde_is_invariant_to_a_time_warp(options, tol):
    """Euler at the knots takes $z + f(z) \\Delta X$ whatever the gap; a tight adaptive solve
    matches it to its tolerance. (No missing values: filling them linearly in time would not be
    invariant.)"""
    model = _model(interpolation="linear", time_channel=False)
    warped = _batch(missing=False, warp=lambda t: t + 0.5 * t**3)
    plain = model.run(_batch(missing=False), options).predictions
    assert (model.run(warped, options).predictions - plain).abs().max() < tol


def test_with_the_time_channel_a_time_warp_changes_the_output():
    model = _model(interpolation="linear")
    warped = _batch(warp=lambda t: t + 0.5 * t**3)
    assert (model.run(warped, KNOTS).predictions - model.run(_batch(), KNOTS).predictions).abs().min() > 1e-3


class LinearField(nn.Module):
    """$f(z) = A z$ for a one-channel control: `[B, H]` -> `[B, H, 1]`."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, t, z, args=None):
        return (z @ self.a.T)[..., None]


def test_a_linear_field_on_a_one_channel_control_has_the_matrix_exponential_solution():
    """$z(T) = \\exp(A (X_T - X_0)) z_0$ whatever the path in between (here a Hermite spline)."""
    batch = collate([Series(s.times, s.values[:, :1]) for s in map(_series, LENGTHS, range(3), [False] * 3)])
    torch.manual_seed(2)
    model = NeuralCDE(1, 4, 3, time_channel=False).double()
    a = torch.randn(4, 4, dtype=F64) / 2
    model.field = LinearField(a)
    z0 = model.initial_state(batch).detach()
    rise = (batch.values[torch.arange(3), batch.last_index, 0] - batch.values[:, 0, 0]).tolist()
    final = torch.stack([torch.from_numpy(scipy.linalg.expm(a.numpy() * dx)) @ z for dx, z in zip(rise, z0)])
    assert (model.run(batch, TIGHT).predictions - model.head(final)).abs().max() < 1e-7  # measured 1e-10


def test_euler_at_the_knots_of_a_linear_path_is_the_discrete_recursion():
    """$z_{k+1} = z_k + f(z_k)(X_{k+1} - X_k)$ with $X_k = (t_k, x_k)$ (no missing values)."""
    batch = _batch(missing=False)
    model = _model(interpolation="linear")
    controls = torch.cat([batch.times[..., None], batch.values], dim=-1)
    for b, length in enumerate(LENGTHS):
        z = model.embed(controls[b : b + 1, 0])
        for k in range(length - 1):
            z = z + model.field(None, z) @ (controls[b, k + 1] - controls[b, k])
        assert (model.run(batch, KNOTS).predictions[b] - model.head(z)[0]).abs().max() < 1e-12


@pytest.mark.parametrize("kind", ["hermite", "linear", "rectilinear", "natural"])
def test_a_sample_padded_in_a_batch_predicts_what_it_predicts_alone(kind):
    model = _model(interpolation=kind, count_channels=True)
    batch = _batch()
    together = model(batch)
    for b, length in enumerate(LENGTHS):
        alone = model(collate([_series(length, b)]))
        assert torch.allclose(together[b], alone[0], atol=1e-10, rtol=0)  # measured 3e-13


@pytest.mark.parametrize(
    "options, tol",
    [
        (None, 1e-2),  # the default Tsit5 at rtol 1e-3: measured 1.5e-3
        (SolveOptions(nct.Dopri5(), nct.PIDController(rtol=1e-6, atol=1e-6)), 1e-3),  # measured 1.4e-4
        (SolveOptions(nct.Heun(), nct.ConstantStep(0.05)), 1e-2),  # measured 2.8e-3
        (SolveOptions(nct.RK4(), nct.KnotToKnot()), 1e-1),  # one step per gap of up to 1.2: measured 2.8e-2
    ],
)
def test_other_solvers_solve_the_same_model_within_their_accuracy(options, tol):
    model, batch = _model(), _batch()
    assert (model.run(batch, options).predictions - _tight_predictions()).abs().max() < tol


@functools.cache
def _tight_predictions() -> torch.Tensor:
    with torch.no_grad():
        return _model().run(_batch(), TIGHT).predictions


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(hidden=0), "`hidden` must be a positive int; got 0"),
        (dict(outputs=True), "`outputs` must be a positive int"),
        (dict(channels=2.0), "`channels` must be a positive int"),
        (dict(interpolation="cubic"), "`interpolation` must be one of"),
        (dict(time_channel=1), "`time_channel` must be True or False"),
        (dict(interpolation="rectilinear", time_channel=False), "`time_channel` must be True for"),
        (dict(width=-1), "`width` must be a positive int"),
        (dict(depth=0), "`depth` must be a positive int"),
    ],
)
def test_bad_constructor_arguments_raise_named_errors(options, message):
    arguments = dict(channels=2, hidden=4, outputs=1) | options
    with pytest.raises(InvalidInputError, match=message):
        NeuralCDE(arguments.pop("channels"), arguments.pop("hidden"), arguments.pop("outputs"), **arguments)


def test_a_batch_with_other_channels_is_named():
    with pytest.raises(InvalidInputError, match="`batch` must have the model's 3 channels; got 2"):
        NeuralCDE(3, 4, 1).double()(_batch())
