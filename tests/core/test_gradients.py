"""Gradient strategies: float64 gradchecks, backsolve against backprop, checkpointing,
per-sample invariance and refusals."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch
from torch import nn

import neuralct as nct
from neuralct.data import Series, collate
from neuralct.models import NeuralCDE, SolveOptions
from neuralct.solvers.base import AbstractSolver

D = torch.float64


class MLPField(nn.Module):
    """A small neural vector field `f(t, y) = scale * net(y)` that counts its calls."""

    def __init__(self, channels: int = 2, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(channels, hidden), nn.Tanh(), nn.Linear(hidden, channels)).to(D)
        self.calls = 0

    def forward(self, t: torch.Tensor, y: torch.Tensor, args: Any) -> torch.Tensor:
        self.calls += 1
        out = self.net(y)
        return out if args is None else out * args


class LinearField(nn.Module):
    """`f(t, y) = scale * tanh(W y) + sin(t)`: smooth and cheap for gradcheck."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([[-0.5, 1.0], [-1.0, -0.3]], dtype=D))

    def forward(self, t: torch.Tensor, y: torch.Tensor, args: Any) -> torch.Tensor:
        return args * torch.tanh(y @ self.weight.T) + torch.sin(t)[:, None]


def per_sample_times(batch: int, saves: int) -> torch.Tensor:
    """`[B, K]` increasing, distinct grids per sample."""
    steps = torch.rand(batch, saves - 1, dtype=D) * 0.5 + 0.1
    start = torch.rand(batch, 1, dtype=D) * 0.3
    return torch.cat([start, start + torch.cumsum(steps, dim=1)], dim=1)


def tight() -> nct.PIDController:
    return nct.PIDController(rtol=1e-10, atol=1e-12)


GRADCHECK_CASES = [
    pytest.param(nct.Backprop(), nct.RK4(), nct.ConstantStep(0.05), id="backprop"),
    pytest.param(nct.Backprop(checkpoint_every=2), nct.RK4(), nct.ConstantStep(0.05), id="backprop-checkpointed"),
    pytest.param(nct.Backsolve(), nct.Dopri5(), tight(), id="backsolve"),
    pytest.param(nct.Backsolve(seminorm=True), nct.Dopri5(), tight(), id="backsolve-seminorm"),
]


@pytest.mark.parametrize("gradient, solver, controller", GRADCHECK_CASES)
def test_gradcheck_passes_in_float64_for_every_gradient_strategy(gradient, solver, controller):
    # Backsolve's gradient is the continuous one; at rtol=1e-10 it equals the derivative of the
    # discrete solve well within gradcheck's tolerances.
    field = LinearField()
    term = nct.ODETerm(field)
    ts = per_sample_times(2, 3)
    y0 = torch.randn(2, 2, dtype=D, requires_grad=True)
    scale = torch.tensor(0.8, dtype=D, requires_grad=True)

    def run(y0, weight, scale):
        sol = nct.solve(term, y0, ts, solver=solver, controller=controller, gradient=gradient, args=scale)
        return sol.ys

    assert torch.autograd.gradcheck(run, (y0, field.weight, scale), fast_mode=True)


def neural_ode_gradients(
    gradient: nct.AbstractGradient, field: MLPField, y0: torch.Tensor, ts: torch.Tensor, weights: torch.Tensor
):
    """Gradients of a weighted sum of all saved states, and the field calls the backward pass made."""
    sol = nct.solve(
        nct.ODETerm(field),
        y0,
        ts,
        solver=nct.Dopri5(),
        controller=nct.PIDController(rtol=1e-8, atol=1e-10),
        gradient=gradient,
    )
    calls = field.calls
    grads = torch.autograd.grad((sol.ys * weights).sum(), [y0, *field.parameters()])
    return grads, field.calls - calls


def test_backsolve_matches_backprop_on_a_small_neural_ode_for_y0_and_every_parameter():
    field = MLPField()
    ts = per_sample_times(4, 5)
    y0 = torch.randn(4, 2, dtype=D, requires_grad=True)
    weights = torch.randn(4, 5, 2, dtype=D)
    reference, _ = neural_ode_gradients(nct.Backprop(), field, y0, ts, weights)
    adjoint, full_calls = neural_ode_gradients(nct.Backsolve(), field, y0, ts, weights)
    seminorm, semi_calls = neural_ode_gradients(nct.Backsolve(seminorm=True), field, y0, ts, weights)
    for ref, adj, semi in zip(reference, adjoint, seminorm):
        assert float((adj - ref).norm() / ref.norm()) < 1e-4
        assert float((semi - ref).norm() / ref.norm()) < 1e-4
    # Batched backward field evaluations; measured 98 with seminorm vs 140 without.
    print(f"backward field calls: full norm {full_calls}, seminorm {semi_calls}")
    assert semi_calls <= full_calls


def test_checkpointed_backprop_gives_the_same_gradients_as_plain_backprop():
    field = MLPField()
    ts = per_sample_times(3, 4)
    y0 = torch.randn(3, 2, dtype=D, requires_grad=True)
    weights = torch.randn(3, 4, 2, dtype=D)
    plain, _ = neural_ode_gradients(nct.Backprop(), field, y0, ts, weights)
    for k in (1, 2, 5):
        checkpointed, _ = neural_ode_gradients(nct.Backprop(checkpoint_every=k), field, y0, ts, weights)
        for a, b in zip(plain, checkpointed):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


# The parameter adjoint integrated with the state per sample, and (seminorm) by quadrature
# over the backward steps, summed over the batch.
BACKSOLVES = [pytest.param(nct.Backsolve(), id="full-norm"), pytest.param(nct.Backsolve(seminorm=True), id="seminorm")]


@pytest.mark.parametrize("backsolve", BACKSOLVES)
def test_backsolve_gradient_of_a_sample_does_not_depend_on_its_batch_mates(backsolve):
    field = MLPField()
    ts = per_sample_times(3, 4)
    ts[1] = ts[1] * 4  # a neighbour with a much longer interval, hence other step sizes
    y0 = torch.randn(3, 2, dtype=D)

    def sample0_gradients(batch_y0, batch_ts):
        y0 = batch_y0.clone().requires_grad_(True)
        sol = nct.solve(nct.ODETerm(field), y0, batch_ts, controller=nct.PIDController(rtol=1e-6), gradient=backsolve)
        grads = torch.autograd.grad(sol.ys[0].square().sum(), [y0, *field.parameters()])
        return [grads[0][0]] + list(grads[1:])

    alone = sample0_gradients(y0[:1], ts[:1])
    batched = sample0_gradients(y0, ts)
    for a, b in zip(alone, batched):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backsolve", BACKSOLVES)
def test_backsolve_gradient_of_a_padded_sample_is_its_gradient_alone(backsolve):
    # Sample 1 ends at its second save time (`lengths`); its outputs past that repeat the last
    # one, so their cotangents belong there. Before the adjoint honoured `lengths`, it integrated
    # them backwards over the padding: y0 gradient off by 26%.
    field = MLPField()
    ts = per_sample_times(3, 4)
    y0 = torch.randn(3, 2, dtype=D, requires_grad=True)
    weights = torch.randn(3, 4, 2, dtype=D)
    controller = nct.PIDController(rtol=1e-10, atol=1e-12)
    sol = nct.solve(
        nct.ODETerm(field), y0, ts, controller=controller, gradient=backsolve, lengths=torch.tensor([4, 2, 3])
    )
    padded = torch.autograd.grad((sol.ys * weights).sum(), y0)[0][1]
    alone_y0 = y0[1:2].detach().requires_grad_(True)
    alone = nct.solve(nct.ODETerm(field), alone_y0, ts[1:2, :2], controller=controller)
    # The held outputs 2 and 3 are output 1 again: their weights add onto it.
    cotangent = weights[1:2, 1] + weights[1:2, 2] + weights[1:2, 3]
    loss = (alone.ys[:, 0] * weights[1:2, 0]).sum() + (alone.ys[:, 1] * cotangent).sum()
    reference = torch.autograd.grad(loss, alone_y0)[0][0]
    torch.testing.assert_close(padded, reference, rtol=1e-7, atol=1e-9)


def test_backsolve_y0_gradients_are_per_sample_when_every_sample_has_a_loss():
    field = MLPField()
    ts = per_sample_times(3, 4)
    y0 = torch.randn(3, 2, dtype=D)

    def y0_gradient(batch_y0, batch_ts):
        y0 = batch_y0.clone().requires_grad_(True)
        sol = nct.solve(
            nct.ODETerm(field), y0, batch_ts, controller=nct.PIDController(rtol=1e-6), gradient=nct.Backsolve()
        )
        return torch.autograd.grad(sol.ys.square().sum(), y0)[0]

    batched = y0_gradient(y0, ts)
    for b in range(3):
        torch.testing.assert_close(y0_gradient(y0[b : b + 1], ts[b : b + 1])[0], batched[b], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backsolve", BACKSOLVES)
def test_backsolve_handles_per_sample_args_with_batched_vector_jacobian_products(backsolve):
    # Per-sample data in `args` cannot be split by vmap; Backsolve falls back to batched VJPs.
    field = MLPField()
    ts = per_sample_times(3, 4)
    y0 = torch.randn(3, 2, dtype=D, requires_grad=True)
    scale = (torch.rand(3, 1, dtype=D) + 0.5).requires_grad_(True)
    grads = {}
    for gradient in (nct.Backprop(), backsolve):
        sol = nct.solve(
            nct.ODETerm(field),
            y0,
            ts,
            controller=nct.PIDController(rtol=1e-9, atol=1e-11),
            gradient=gradient,
            args=scale,
        )
        grads[type(gradient)] = torch.autograd.grad(sol.ys.sum(), [y0, scale, *field.parameters()])
    for ref, adj in zip(grads[nct.Backprop], grads[nct.Backsolve]):
        assert float((adj - ref).norm() / ref.norm()) < 1e-5, backsolve


class SlopePath:
    """A per-sample linear control path `X_b(t) = slope_b t` (data held per sample)."""

    def __init__(self, slope: torch.Tensor):
        self.slope = slope

    def evaluate(self, t: torch.Tensor) -> torch.Tensor:
        return self.slope * t[:, None]

    def derivative(self, t: torch.Tensor) -> torch.Tensor:
        return self.slope


@pytest.mark.parametrize("backsolve", BACKSOLVES)
def test_backsolve_matches_backprop_for_a_control_term_whose_path_holds_per_sample_data(backsolve):
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2 * 3)).to(D)
    term = nct.ControlTerm(lambda t, z, args: net(z).reshape(-1, 2, 3), SlopePath(torch.randn(3, 3, dtype=D)))
    term.net = net  # register the parameters on the term, where Backsolve looks for them
    ts = per_sample_times(3, 4)
    y0 = torch.randn(3, 2, dtype=D, requires_grad=True)
    grads = {}
    for gradient in (nct.Backprop(), backsolve):
        sol = nct.solve(term, y0, ts, controller=nct.PIDController(rtol=1e-9, atol=1e-11), gradient=gradient)
        grads[type(gradient)] = torch.autograd.grad(sol.ys.sin().sum(), [y0, *net.parameters()])
    for ref, adj in zip(grads[nct.Backprop], grads[nct.Backsolve]):
        assert float((adj - ref).norm() / ref.norm()) < 1e-5, backsolve


def test_backsolve_raises_for_a_tensor_captured_by_closure_instead_of_dropping_its_gradient():
    hidden = torch.tensor(2.0, dtype=D, requires_grad=True)
    term = nct.ODETerm(lambda t, y, args: -hidden * y)
    y0 = torch.ones(2, 1, dtype=D, requires_grad=True)
    with pytest.raises(nct.IncompatibleTermError, match="requires grad but is neither a parameter"):
        nct.solve(term, y0, torch.linspace(0, 1, 3, dtype=D), gradient=nct.Backsolve())


def test_backsolve_without_any_gradient_needed_is_a_plain_solve():
    field = MLPField()
    y0 = torch.randn(2, 2, dtype=D)
    ts = torch.linspace(0, 1, 4, dtype=D)
    with torch.no_grad():
        plain = nct.solve(nct.ODETerm(field), y0, ts, gradient=nct.Backprop())
        adjoint = nct.solve(nct.ODETerm(field), y0, ts, gradient=nct.Backsolve())
    torch.testing.assert_close(plain.ys, adjoint.ys, rtol=0, atol=0)


@pytest.mark.parametrize("backsolve", BACKSOLVES)
def test_backsolve_refuses_a_failed_sample_that_receives_a_gradient_but_skips_a_masked_one(backsolve):
    term = nct.ODETerm(lambda t, y, args: args * y**2)  # blows up in finite time for y0 * args > 0
    args = torch.tensor([[1.0], [-1.0]], dtype=D)
    y0 = torch.ones(2, 1, dtype=D, requires_grad=True)
    ts = torch.linspace(0, 2, 3, dtype=D)
    sol = nct.solve(term, y0, ts, gradient=backsolve, throw=False, max_steps=200, args=args)
    assert sol.status.tolist()[1] == nct.Status.SUCCESS and sol.status.tolist()[0] != nct.Status.SUCCESS
    (grad,) = torch.autograd.grad(sol.ys[1].sum(), y0, retain_graph=True)
    assert grad[0, 0] == 0 and torch.isfinite(grad).all()
    with pytest.raises(nct.InvalidInputError, match="forward solve failed; samples \\[0\\]"):
        torch.autograd.grad(torch.nan_to_num(sol.ys).sum(), y0)


class NoiseOnlyTerm(nct.AbstractTerm):
    """A term that is not a drift term (like an SDE's diffusion or a delay term)."""


class NoiseOnlySolver(AbstractSolver):
    order: ClassVar[float] = 0.5
    term_types: ClassVar[tuple[type, ...]] = (NoiseOnlyTerm,)

    def init(self, term, t0, y0, args):
        raise NotImplementedError

    def step(self, term, t0, y0, h, carry, args, dense):
        raise NotImplementedError


def test_backsolve_refuses_a_non_drift_term_naming_it():
    with pytest.raises(nct.IncompatibleTermError, match="NoiseOnlyTerm"):
        nct.solve(
            NoiseOnlyTerm(),
            torch.ones(1, 1),
            torch.linspace(0, 1, 2),
            solver=NoiseOnlySolver(),
            controller=nct.ConstantStep(0.1),
            gradient=nct.Backsolve(),
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rtol": -1.0}, "`rtol` must be None or a finite number >= 0"),
        ({"atol": float("nan")}, "`atol` must be None or a finite number >= 0"),
        ({"seminorm": 1}, "`seminorm` must be a bool"),
        ({"solver": "tsit5"}, "`solver` must be None or an AbstractSolver"),
    ],
)
def test_backsolve_rejects_bad_options_by_name(kwargs, message):
    with pytest.raises(nct.InvalidInputError, match=message):
        nct.Backsolve(**kwargs)


def test_backsolve_refuses_a_backward_solver_without_error_estimate_under_pid():
    term = nct.ODETerm(MLPField())
    y0 = torch.ones(1, 2, dtype=D, requires_grad=True)
    with pytest.raises(nct.IncompatibleTermError, match="no error estimate"):
        nct.solve(term, y0, torch.linspace(0, 1, 2, dtype=D), gradient=nct.Backsolve(solver=nct.Euler()))


@pytest.mark.parametrize("backsolve", [nct.Backsolve(), nct.Backsolve(seminorm=True)], ids=["full", "seminorm"])
def test_backsolve_of_a_padded_float32_neural_cde_batch_far_from_t0_matches_backprop(backsolve):
    # Series of 5 and 30 observations at times near 100, in float32. The short series' adjoint
    # is zero over its padding; its backward solve there used to start from a first step of
    # 1e-6, which float32 cannot resolve beside t = 100 (DT_UNDERFLOW). Each sample now ends at
    # its last real time, and no first step falls below a hundred ulps of where it starts.
    generator = torch.Generator().manual_seed(0)
    series = [
        Series(100.0 + (0.2 + torch.rand(n, generator=generator)).cumsum(0), torch.randn(n, 2, generator=generator))
        for n in (5, 30)
    ]
    batch = collate(series)
    model = NeuralCDE(channels=2, hidden=4, outputs=1)
    controller = nct.PIDController(rtol=1e-4, atol=1e-6)

    def gradients(gradient):
        model.zero_grad()
        model(batch, SolveOptions(nct.Tsit5(), controller, gradient=gradient)).square().sum().backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    adjoint, exact = gradients(backsolve), gradients(nct.Backprop())
    assert bool(torch.isfinite(adjoint).all())
    # The continuous adjoint of this ReLU field differs from the discrete gradient by about 3%
    # at rtol 1e-4, in float32 as in float64, and with times near 0 as near 100.
    assert float((adjoint - exact).norm() / exact.norm()) < 5e-2


@pytest.mark.parametrize("mode", ["vmap", "batched"])
def test_the_parameter_quadrature_of_backward_steps_that_were_all_rejected_is_empty(mode):
    # Backsolve(seminorm=True) adds the quadrature every few backward steps; a stretch whose
    # steps were all rejected (or all belong to skipped samples) adds nothing, and must not fail
    # (the batched per-sample VJPs of fields with per-sample data stacked an empty list).
    from neuralct.gradients._adjoint_field import AdjointSystem

    field = MLPField()
    system = AdjointSystem(nct.ODETerm(field), None, torch.Size([2]))
    system.probe(torch.zeros(3, dtype=D), torch.randn(3, 2, dtype=D))
    system.mode = mode
    t0, t1 = torch.zeros(3, dtype=D), torch.full((3,), -0.1, dtype=D)
    z = torch.randn(3, 4, dtype=D)
    coeffs = torch.zeros(3, 4, 4, dtype=D)
    record = (t0, t1, z, z, coeffs, torch.zeros(3, dtype=torch.bool))
    assert system.parameter_quadrature((record, record), torch.zeros(3, dtype=torch.bool)) is None
    accepted = (t0, t1, z, z, coeffs, torch.tensor([True, False, False]))
    assert system.parameter_quadrature((accepted,), torch.tensor([True, False, False])) is None
