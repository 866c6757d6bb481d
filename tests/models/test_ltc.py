"""LTC: the fused solver equals ncps's cell, keeps the state in the convex hull, converges to Radau at order 1."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ncps.torch import LTCCell
from ncps.wirings import FullyConnected
from scipy.integrate import solve_ivp
from torch import nn

import neuralct as nct
from neuralct.data.series import IrregularBatch
from neuralct.errors import IncompatibleTermError, InvalidInputError
from neuralct.models.base import SolveOptions
from neuralct.models.ltc import LTC, LTCField, LTCFused, LTCTerm
from neuralct.paths.piecewise_constant import PiecewiseConstantPath

DTYPE = torch.float64


def _batch(batch: int = 3, length: int = 6, channels: int = 2, lengths: list[int] | None = None, scale: float = 1.0):
    """Per-sample gaps in [0.1, 2.1], values N(0, scale^2)."""
    times = (0.1 + 2 * torch.rand(batch, length, dtype=DTYPE)).cumsum(dim=1)
    values = scale * torch.randn(batch, length, channels, dtype=DTYPE)
    lengths_t = torch.tensor(lengths if lengths is not None else [length] * batch)
    return IrregularBatch.from_padded(times, values, lengths=lengths_t)


def _states(model: LTC, batch: IrregularBatch, options: SolveOptions | None = None) -> torch.Tensor:
    """`[B, T, H]` the state at every observation time."""
    options = options or model.default_solve_options()
    term, y0 = model.term(batch), model.initial_state(batch)
    return nct.solve(term, y0, model.save_times(batch), **options.solve_kwargs()).ys[:, 1:]


def _hull(field: LTCField, v0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-neuron `[B, N]` min and max of {v0, v_leak, E (recurrent and sensory)}."""
    potentials = torch.cat([field.vleak[None], field.erev, field.sensory_erev], dim=0).detach()
    low = torch.minimum(potentials.min(dim=0).values, v0)
    high = torch.maximum(potentials.max(dim=0).values, v0)
    return low, high


def _numpy_rhs(field: LTCField):
    """The LTC equation in the paper's form, $C_m \\dot v = g_l(v_l - v) + \\sum g (E - v)$, in NumPy."""
    p = {name: value.detach().numpy() for name, value in field.named_parameters()}
    soft = (lambda x: np.log1p(np.exp(x))) if field.implicit_constraints else (lambda x: x)
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731

    def rhs(t: float, v: np.ndarray, x: np.ndarray) -> np.ndarray:
        u = x * p["input_w"] + p["input_b"]
        g_in = soft(p["sensory_w"]) * sigmoid(p["sensory_sigma"] * (u[:, None] - p["sensory_mu"]))
        g = soft(p["w"]) * sigmoid(p["sigma"] * (v[:, None] - p["mu"]))
        current = soft(p["gleak"]) * (p["vleak"] - v) + (g * (p["erev"] - v)).sum(0)
        return (current + (g_in * (p["sensory_erev"] - v)).sum(0)) / soft(p["cm"])

    return rhs


def _radau(field: LTCField, times: np.ndarray, values: np.ndarray, first_gap: float = 1.0) -> np.ndarray:
    """`[T, N]` SciPy Radau (rtol 1e-10) from v = 0 at t_0 - first_gap, x_k held over each gap."""
    rhs = _numpy_rhs(field)
    knots = np.concatenate([[times[0] - first_gap], times])
    v, out = np.zeros(field.cm.shape[0]), []
    for k in range(len(times)):
        sol = solve_ivp(rhs, (knots[k], knots[k + 1]), v, method="Radau", rtol=1e-10, atol=1e-12, args=(values[k],))
        v = sol.y[:, -1]
        out.append(v)
    return np.stack(out)


@pytest.mark.parametrize("implicit", [True, False])
def test_fused_solve_equals_ncps_ltc_cell_with_per_sample_gaps(implicit: bool) -> None:
    batch = _batch(batch=4, length=7, channels=3)
    model = LTC(3, 5, 1, implicit_constraints=implicit).to(DTYPE)
    cell = LTCCell(FullyConnected(5), in_features=3, implicit_param_constraints=implicit).to(DTYPE)
    missing = cell.load_state_dict(model.field.state_dict(), strict=False).missing_keys
    assert set(missing) == {"sparsity_mask", "sensory_sparsity_mask", "output_w", "output_b"}  # all ones / unused
    # The cell API with elapsed time shaped (B, 1): the ncps LTC wrapper mishandles per-sample timespans.
    elapsed = torch.cat([torch.ones(4, 1, dtype=DTYPE), batch.times.diff(dim=1)], dim=1)
    v, expected = torch.zeros(4, 5, dtype=DTYPE), []
    for k in range(7):
        _, v = cell(batch.values[:, k], v, elapsed[:, k : k + 1])
        expected.append(v)
    # Asked: 1e-6; measured about 1e-15 in float64.
    torch.testing.assert_close(_states(model, batch), torch.stack(expected, dim=1), atol=1e-12, rtol=0)
    assert model.run(batch).stats.vf_evals.tolist() == [6 * 7] * 4  # one fused step of 6 unfolds per gap


def _fused_step(field: LTCField, v0: torch.Tensor, x: torch.Tensor, h: float, **options) -> torch.Tensor:
    path = PiecewiseConstantPath(x[:, None, :].expand(-1, 2, -1).contiguous(), torch.tensor([0.0, h], dtype=DTYPE))
    term = LTCTerm(field, path)
    steps = torch.full((v0.shape[0],), h, dtype=DTYPE)
    return LTCFused(**options).step(term, torch.zeros_like(steps), v0, steps, (), None, False).y1


@pytest.mark.parametrize("h", [1e-3, 0.5, 50.0])
@pytest.mark.parametrize("unfolds", [1, 6])
def test_one_fused_step_stays_in_the_convex_hull_of_state_leak_and_reversal_potentials(h: float, unfolds: int) -> None:
    field = LTCField(3, 8).to(DTYPE)
    with torch.no_grad():  # reversal potentials as training leaves them: anywhere, not just +-1
        field.erev.uniform_(-2, 3)
        field.sensory_erev.uniform_(-1, 1)
    v0 = 4 * torch.randn(64, 8, dtype=DTYPE)  # most starts lie outside [min E, max E]
    v1 = _fused_step(field, v0, 100 * torch.randn(64, 3, dtype=DTYPE), h, unfolds=unfolds)
    low, high = _hull(field, v0)
    assert bool((v1 >= low - 1e-12).all() and (v1 <= high + 1e-12).all())


def test_long_rollout_with_inputs_scaled_by_1e3_stays_in_the_potential_bounds() -> None:
    batch = _batch(batch=2, length=500, channels=3, scale=1e3).to(dtype=torch.float32)
    model = LTC(3, 8, 1)
    ys = _states(model, batch)
    low, high = _hull(model.field, torch.zeros(2, 8))
    assert bool(torch.isfinite(ys).all())
    assert bool((ys >= low[:, None] - 1e-6).all() and (ys <= high[:, None] + 1e-6).all())
    assert float(ys.detach().abs().max()) > 0.5  # the inputs do drive the state towards the reversal potentials


def test_fused_solution_converges_to_radau_at_order_one() -> None:
    field = LTCField(2, 4).to(DTYPE)
    times = torch.tensor([[0.0, 0.7, 1.5, 2.0]], dtype=DTYPE)
    values = torch.randn(1, 4, 2, dtype=DTYPE)
    path = PiecewiseConstantPath(values, times)
    reference = torch.from_numpy(_radau(field, times[0, 1:].numpy(), values[0, 1:].numpy(), first_gap=0.7))
    unfolds = [1, 2, 4, 8, 16, 32, 64]
    errors = []
    for count in unfolds:
        sol = nct.solve(
            LTCTerm(field, path),
            torch.zeros(1, 4, dtype=DTYPE),
            times,
            solver=LTCFused(count),
            controller=nct.KnotToKnot(),
        )
        errors.append(float((sol.ys[0, 1:].detach() - reference).abs().max()))
    # Error ~ (gap / unfolds)^1 once the sub-steps resolve the fastest time constant (from 8 unfolds).
    slope = np.polyfit(np.log(unfolds[3:]), np.log(errors[3:]), 1)[0]
    assert -1.05 < slope < -0.95, (slope, errors)
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < 2e-2


def test_explicit_euler_leaves_the_hull_at_a_large_step_where_the_fused_solver_does_not() -> None:
    model = LTC(4, 16, 1).to(DTYPE)
    batch = _batch(batch=1, length=20, channels=4, scale=1e3)
    low, high = _hull(model.field, torch.zeros(1, 16, dtype=DTYPE))
    fused = _states(model, batch)
    assert bool((fused >= low[:, None] - 1e-12).all() and (fused <= high[:, None] + 1e-12).all())
    term, y0 = model.term(batch), model.initial_state(batch)
    euler = nct.solve(term, y0, model.save_times(batch), solver=nct.Euler(), controller=nct.KnotToKnot(), throw=False)
    # Total conductance / C_m is about 10 here, so Euler is unstable for steps above about 0.2.
    assert not bool(euler.succeeded.all()) or float(euler.ys.detach().abs().max()) > 10 * float(high.abs().max())


def test_batch_with_per_sample_gaps_and_lengths_equals_each_sample_alone() -> None:
    batch = _batch(batch=3, length=6, channels=2, lengths=[6, 3, 5])
    model = LTC(2, 5, 2).to(DTYPE)
    together = model(batch)
    for i in range(3):
        torch.testing.assert_close(together[i : i + 1], model(batch.select([i])), atol=1e-13, rtol=0)


SOLVERS = [
    (nct.Tsit5(), nct.PIDController(rtol=1e-9, atol=1e-11), 1e-8),  # measured 8e-11
    (nct.Dopri5(), nct.PIDController(rtol=1e-9, atol=1e-11), 1e-8),  # 2e-10
    (nct.RK4(), nct.ConstantStep(0.02), 1e-7),  # 3e-8
    (nct.Euler(), nct.ConstantStep(0.004), 2e-3),  # first order: about 6e-4
    (nct.ImplicitEuler(), nct.ConstantStep(0.02), 1e-2),  # about 3e-3
]


@pytest.mark.parametrize("solver, controller, tolerance", SOLVERS, ids=lambda x: type(x).__name__)
def test_ltc_term_through_general_ode_solvers_agrees_with_radau(solver, controller, tolerance) -> None:
    batch = _batch(batch=2, length=3, channels=2)
    model = LTC(2, 4, 1).to(DTYPE)
    ys = _states(model, batch, SolveOptions(solver, controller)).detach()
    for i in range(2):
        reference = _radau(model.field, batch.times[i].numpy(), batch.values[i].numpy())
        np.testing.assert_allclose(ys[i].numpy(), reference, atol=tolerance, rtol=0)


def test_algorithm_one_as_printed_is_one_fused_step_of_the_whole_gap() -> None:
    field = LTCField(2, 5).to(DTYPE)
    v0, x = torch.randn(4, 5, dtype=DTYPE), torch.randn(4, 2, dtype=DTYPE)
    printed = _fused_step(field, v0, x, 0.8, iterate="initial")
    torch.testing.assert_close(printed, _fused_step(field, v0, x, 0.8, unfolds=1), atol=0, rtol=0)
    assert float((printed - _fused_step(field, v0, x, 0.8)).detach().abs().max()) > 1e-4


@pytest.mark.parametrize("implicit", [True, False])
def test_positive_parameters_stay_non_negative_after_optimiser_steps(implicit: bool) -> None:
    model = LTC(2, 4, 1, implicit_constraints=implicit)
    optimiser = torch.optim.SGD(model.parameters(), lr=5.0)
    batch = _batch(batch=2, length=5, channels=2).to(dtype=torch.float32)
    for _ in range(3):
        optimiser.zero_grad()
        # The penalty pushes every positive parameter below zero; the model loss keeps the graph honest.
        penalty = sum(getattr(model.field, name).sum() for name in ("cm", "gleak", "w", "sensory_w"))
        (model(batch).square().mean() + penalty).backward()
        optimiser.step()
        model.apply_weight_constraints()
        for name in ("cm", "gleak", "w", "sensory_w"):
            assert bool((model.field.positive(name) >= 0).all()), name
    assert bool(torch.isfinite(model(batch)).all())


def test_fused_step_gradients_match_finite_differences() -> None:
    field = LTCField(2, 3).to(DTYPE)
    x = torch.randn(2, 2, dtype=DTYPE)
    v0 = torch.randn(2, 3, dtype=DTYPE, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: _fused_step(field, v, x, 0.6), (v0,))


def test_dense_output_of_the_fused_solver_passes_through_the_saved_states() -> None:
    batch = _batch(batch=2, length=5, channels=2)
    model = LTC(2, 4, 1).to(DTYPE)
    options = model.default_solve_options().solve_kwargs()
    times = model.save_times(batch)
    sol = nct.solve(model.term(batch), model.initial_state(batch), times, dense=True, **options)
    torch.testing.assert_close(sol.evaluate(times), sol.ys, atol=1e-12, rtol=0)


def test_fused_solver_rejects_other_terms_naming_both() -> None:
    term = nct.ODETerm(lambda t, y, args: -y)
    with pytest.raises(IncompatibleTermError, match="LTCFused.*ODETerm"):
        nct.solve(term, torch.ones(1, 2), torch.tensor([0.0, 1.0]), solver=LTCFused(), controller=nct.KnotToKnot())


@pytest.mark.parametrize(
    "build, argument",
    [
        (lambda: LTC(0, 4, 1), "channels"),
        (lambda: LTC(2, 4.0, 1), "hidden"),
        (lambda: LTC(2, 4, -1), "outputs"),
        (lambda: LTC(2, 4, 1, unfolds=0), "unfolds"),
        (lambda: LTC(2, 4, 1, first_gap=-1.0), "first_gap"),
        (lambda: LTC(2, 4, 1, first_gap=math.inf), "first_gap"),
        (lambda: LTCFused(epsilon=-1e-8), "epsilon"),
        (lambda: LTCFused(iterate="printed"), "iterate"),
        (lambda: LTCField(0, 3), "inputs"),
        (lambda: LTCTerm(nn.Linear(2, 2), PiecewiseConstantPath(torch.zeros(1, 2, 2))), "field"),
        (lambda: LTCTerm(LTCField(2, 3), torch.zeros(1, 2, 2)), "path"),
    ],
)
def test_bad_arguments_raise_named_errors(build, argument: str) -> None:
    with pytest.raises(InvalidInputError, match=f"`{argument}`"):
        build()
