"""SDE gradients: the reversible adjoint of ReversibleHeun against Backprop and its memory; the
stochastic adjoint against closed forms, finite differences and Backprop as dt shrinks; refusals."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import neuralct as nct
from benchmarks.memory import Field, peak_mib
from neuralct.gradients import ReversibleAdjoint, StochasticAdjoint

F64 = torch.float64
STRAT = nct.SDEType.STRATONOVICH
DIAGONAL, SCALAR, GENERAL = nct.NoiseType.DIAGONAL, nct.NoiseType.SCALAR, nct.NoiseType.GENERAL
BATCH, STATE, NOISE = 4, 3, 2


class NeuralSDE(nn.Module):
    """MLP drift and diffusion in float64; the diffusion is scaled by `args` (a tensor)."""

    def __init__(self, noise_type: nct.NoiseType):
        super().__init__()
        torch.manual_seed(0)
        self.noise_type = noise_type
        channels = {DIAGONAL: STATE, SCALAR: STATE, GENERAL: STATE * NOISE}[noise_type]
        self.drift = nn.Sequential(nn.Linear(STATE, 8), nn.Tanh(), nn.Linear(8, STATE)).to(F64)
        self.diffusion = nn.Sequential(nn.Linear(STATE, 8), nn.Tanh(), nn.Linear(8, channels)).to(F64)

    def f(self, t: torch.Tensor, y: torch.Tensor, args: Any) -> torch.Tensor:
        return self.drift(y) + 0.1 * torch.sin(t)[:, None]

    def g(self, t: torch.Tensor, y: torch.Tensor, args: Any) -> torch.Tensor:
        if self.noise_type == DIAGONAL:
            # Diagonal noise: channel i may depend on y_i only.
            return args * torch.sin(y + self.diffusion(torch.zeros_like(y)))
        out = args * torch.tanh(self.diffusion(y))
        return out[..., None] if self.noise_type == SCALAR else out.reshape(-1, STATE, NOISE)

    def term(self, brownian) -> nct.SDETerm:
        term = nct.SDETerm(nct.ODETerm(self.f), nct.NoiseTerm(self.g, brownian, self.noise_type, STRAT))
        term.add_module("fields", self)  # registers the MLPs' parameters with the term
        return term


def channels(noise_type: nct.NoiseType) -> int:
    return {DIAGONAL: STATE, SCALAR: 1, GENERAL: NOISE}[noise_type]


def gradients(sde: NeuralSDE, brownian, ts, gradient, solver=None, dt=0.01, lengths=None) -> list[torch.Tensor]:
    """Gradients of a loss on every output with respect to y0, `args` and every parameter."""
    y0 = torch.linspace(-1.0, 1.0, BATCH * STATE, dtype=F64).reshape(BATCH, STATE).requires_grad_(True)
    scale = torch.tensor(0.5, dtype=F64, requires_grad=True)
    solution = nct.solve(
        sde.term(brownian),
        y0,
        ts,
        solver=solver or nct.ReversibleHeun(),
        controller=nct.ConstantStep(dt),
        gradient=gradient,
        args=scale,
        lengths=lengths,
    )
    weights = torch.linspace(0.5, 1.5, solution.ys.shape[1], dtype=F64)[None, :, None]
    loss = (weights * solution.ys).sin().sum() + solution.y_final.square().sum()
    return list(torch.autograd.grad(loss, [y0, scale, *sde.parameters()]))


def relative_error(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    return max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(got, want))


PER_SAMPLE_TS = torch.tensor([[0.0, 0.3, 1.0], [0.1, 0.55, 1.2], [0.0, 0.7, 2.0], [0.25, 0.4, 0.6]], dtype=F64)


@pytest.mark.parametrize("noise_type", [DIAGONAL, SCALAR, GENERAL], ids=lambda n: n.name.lower())
@pytest.mark.parametrize("per_sample", [False, True], ids=["shared-times", "per-sample-times"])
def test_reversible_adjoint_matches_backprop_on_the_same_path_to_float_rounding(noise_type, per_sample):
    # Measured: 4e-16 to 3e-15 relative over y0, args and every parameter (float64, 100-200 steps).
    sde = NeuralSDE(noise_type)
    ts = PER_SAMPLE_TS if per_sample else torch.linspace(0.0, 1.0, 4, dtype=F64)
    path = nct.BrownianPath(0.0, 2.0, (BATCH, channels(noise_type)), dtype=F64, seed=1)
    want = gradients(sde, path, ts, nct.Backprop())
    got = gradients(sde, path, ts, ReversibleAdjoint())
    assert relative_error(got, want) < 1e-8


def test_reversible_adjoint_matches_backprop_on_a_brownian_grid_with_padded_samples():
    sde = NeuralSDE(GENERAL)
    ts = torch.linspace(0.0, 1.0, 5, dtype=F64)
    grid = nct.BrownianGrid(torch.linspace(0.0, 1.0, 41, dtype=F64), (BATCH, NOISE), seed=2)
    lengths = torch.tensor([5, 2, 4, 1])
    want = gradients(sde, grid, ts, nct.Backprop(), dt=0.025, lengths=lengths)
    got = gradients(sde, grid, ts, ReversibleAdjoint(), dt=0.025, lengths=lengths)
    assert relative_error(got, want) < 1e-8


def test_reversible_adjoint_differs_from_backprop_when_a_save_cotangent_is_dropped():
    # The test above fails on a plausible bug: a loss on the middle outputs only, whose
    # cotangents enter the backward pass at their save times, must still be matched.
    sde = NeuralSDE(DIAGONAL)
    path = nct.BrownianPath(0.0, 2.0, (BATCH, STATE), dtype=F64, seed=1)
    y0 = torch.ones(BATCH, STATE, dtype=F64, requires_grad=True)
    grads = []
    for gradient in (nct.Backprop(), ReversibleAdjoint()):
        solution = nct.solve(
            sde.term(path),
            y0,
            PER_SAMPLE_TS,
            solver=nct.ReversibleHeun(),
            controller=nct.ConstantStep(0.05),
            gradient=gradient,
            args=torch.tensor(0.5, dtype=F64),
        )
        grads.append(torch.autograd.grad(solution.ys[:, 1].sum(), y0)[0])
    assert float(grads[0].abs().min()) > 0.1
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=0)


def test_reversible_adjoint_without_gradients_is_a_plain_solve():
    sde = NeuralSDE(DIAGONAL)
    path = nct.BrownianPath(0.0, 1.0, (BATCH, STATE), dtype=F64, seed=1)
    y0 = torch.ones(BATCH, STATE, dtype=F64)
    options = dict(solver=nct.ReversibleHeun(), controller=nct.ConstantStep(0.1), args=torch.tensor(0.5, dtype=F64))
    with torch.no_grad():
        plain = nct.solve(sde.term(path), y0, torch.linspace(0, 1, 3, dtype=F64), **options)
        reversible = nct.solve(
            sde.term(path), y0, torch.linspace(0, 1, 3, dtype=F64), gradient=ReversibleAdjoint(), **options
        )
    assert torch.equal(plain.ys, reversible.ys)


def memory_peak(gradient: nct.AbstractGradient, steps: int) -> float:
    """MiB at the peak of a training step of a float32 neural SDE (MLP drift and diffusion of
    width 32, batch 8, diagonal noise on a Brownian grid) over `steps` steps."""
    torch.manual_seed(0)
    drift, diffusion = Field(4, 32), Field(4, 32)
    grid = nct.BrownianGrid(torch.linspace(0.0, 1.0, steps + 1), (8, 4), seed=0)
    term = nct.SDETerm(nct.ODETerm(drift), nct.NoiseTerm(diffusion, grid, DIAGONAL, STRAT))
    y0 = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))

    def step() -> None:
        term.zero_grad(set_to_none=True)
        solution = nct.solve(
            term,
            y0,
            torch.tensor([0.0, 1.0]),
            solver=nct.ReversibleHeun(),
            controller=nct.ConstantStep(1.0 / steps),
            gradient=gradient,
            max_steps=2 * steps,
        )
        solution.ys.square().mean().backward()

    return peak_mib(step, torch.device("cpu"))


def test_reversible_adjoint_peak_memory_is_flat_in_the_number_of_steps():
    # Measured (batch 8): 0.036 MiB at 25 steps, 0.042 at 200 and 0.066 at 1000 for
    # ReversibleAdjoint, against 0.23, 1.7 and 8.4 MiB for Backprop. What grows is the step
    # times the forward pass keeps, one float32 per sample and step (twice while they are
    # stacked): 8 x 4 bytes per step.
    few, many = 16, 128
    reversible_few, reversible_many = memory_peak(ReversibleAdjoint(), few), memory_peak(ReversibleAdjoint(), many)
    step_times = 2 * (many - few) * 8 * 4 / 2**20
    assert reversible_few <= reversible_many <= reversible_few + step_times + 0.005
    # Backprop over 8 times fewer steps already needs more.
    assert reversible_many <= memory_peak(nct.Backprop(), few) / 2


@pytest.mark.parametrize("solver", [nct.StochasticHeun(), nct.EulerMaruyama()], ids=lambda s: type(s).__name__)
def test_reversible_adjoint_refuses_a_solver_that_cannot_be_inverted_naming_it(solver):
    sde_type = STRAT if isinstance(solver, nct.StochasticHeun) else nct.SDEType.ITO
    path = nct.BrownianPath(0.0, 1.0, (BATCH, STATE), dtype=F64, seed=1)
    term = nct.SDETerm(
        nct.ODETerm(lambda t, y, a: -y), nct.NoiseTerm(lambda t, y, a: 0.1 * y, path, DIAGONAL, sde_type)
    )
    y0 = torch.ones(BATCH, STATE, dtype=F64, requires_grad=True)
    with pytest.raises(nct.IncompatibleTermError, match=f"{type(solver).__name__} cannot be inverted"):
        nct.solve(
            term,
            y0,
            torch.tensor([0.0, 1.0], dtype=F64),
            solver=solver,
            controller=nct.ConstantStep(0.1),
            gradient=ReversibleAdjoint(),
        )


def test_reversible_adjoint_refuses_a_drift_with_jump_times():
    path = nct.BrownianPath(0.0, 1.0, (BATCH, STATE), dtype=F64, seed=1)
    knots = torch.linspace(0.0, 1.0, 5, dtype=F64)
    control = nct.LinearPath(torch.randn(BATCH, 5, 1, dtype=F64), knots)
    drift = nct.ControlTerm(lambda t, y, a: y[..., None] * 0.1, control)
    term = nct.SDETerm(drift, nct.NoiseTerm(lambda t, y, a: 0.1 * y, path, DIAGONAL, STRAT))
    y0 = torch.ones(BATCH, STATE, dtype=F64, requires_grad=True)
    with pytest.raises(nct.IncompatibleTermError, match="jump times of SDETerm"):
        nct.solve(
            term,
            y0,
            knots[[0, -1]],
            solver=nct.ReversibleHeun(),
            controller=nct.ConstantStep(0.1),
            gradient=ReversibleAdjoint(),
        )


def test_reversible_adjoint_refuses_a_tensor_captured_by_closure_instead_of_dropping_its_gradient():
    path = nct.BrownianPath(0.0, 1.0, (BATCH, STATE), dtype=F64, seed=1)
    rate = torch.tensor(0.3, dtype=F64, requires_grad=True)
    term = nct.SDETerm(
        nct.ODETerm(lambda t, y, a: -rate * y), nct.NoiseTerm(lambda t, y, a: 0.1 * y, path, DIAGONAL, STRAT)
    )
    with pytest.raises(nct.IncompatibleTermError, match="ReversibleAdjoint: .* neither a parameter"):
        nct.solve(
            term,
            torch.ones(BATCH, STATE, dtype=F64, requires_grad=True),
            torch.tensor([0.0, 1.0], dtype=F64),
            solver=nct.ReversibleHeun(),
            controller=nct.ConstantStep(0.1),
            gradient=ReversibleAdjoint(),
        )


# --- the stochastic (continuous) adjoint of Stratonovich SDEs ----------------------------------


class GeometricBrownianMotion(nn.Module):
    """$dy = \\mu y\\,dt + \\sigma y \\circ dW$, solved by $y(t) = y_0 e^{\\mu t + \\sigma W(t)}$."""

    def __init__(self, mu: float = 0.3, sigma: float = 0.6):
        super().__init__()
        self.mu = nn.Parameter(torch.tensor(mu, dtype=F64))
        self.sigma = nn.Parameter(torch.tensor(sigma, dtype=F64))

    def f(self, t: torch.Tensor, y: torch.Tensor, args: Any) -> torch.Tensor:
        return self.mu * y

    def g(self, t: torch.Tensor, y: torch.Tensor, args: Any) -> torch.Tensor:
        return self.sigma * y


def gbm_gradient_errors(dt: float, paths: int = 64) -> list[float]:
    """Mean absolute errors of StochasticAdjoint's gradients of sum y(1) with respect to y0
    (per sample), mu and sigma, against the closed form on the same Brownian paths."""
    model = GeometricBrownianMotion()
    path = nct.BrownianPath(0.0, 1.0, (paths, 1), dtype=F64, seed=5)
    term = nct.SDETerm(nct.ODETerm(model.f), nct.NoiseTerm(model.g, path, DIAGONAL, STRAT))
    term.add_module("model", model)
    y0 = torch.linspace(0.5, 1.5, paths, dtype=F64)[:, None].requires_grad_(True)
    solution = nct.solve(
        term,
        y0,
        torch.tensor([0.0, 1.0], dtype=F64),
        solver=nct.StochasticHeun(),
        controller=nct.ConstantStep(dt),
        gradient=StochasticAdjoint(),
    )
    got = torch.autograd.grad(solution.ys[:, -1].sum(), [y0, model.mu, model.sigma])
    w = path.increment(torch.zeros(paths, dtype=F64), torch.ones(paths, dtype=F64))
    growth = torch.exp(0.3 + 0.6 * w)
    exact = [growth, (y0.detach() * growth).sum(), (w * y0.detach() * growth).sum()]
    return [float((a - b).abs().mean()) for a, b in zip(got, exact)]


def loglog_slope(dts: list[float], errors: list[float]) -> float:
    x, y = torch.tensor(dts, dtype=F64).log(), torch.tensor(errors, dtype=F64).log()
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x * x).sum())


def test_stochastic_adjoint_converges_to_the_closed_form_gradients_of_geometric_brownian_motion_at_order_one():
    # Measured slopes 1.02 (y0), 1.10 (mu), 1.13 (sigma); errors at dt = 1/128: 1.7e-3 on
    # gradients of about 1.4 (y0), 0.17 and 0.49 on sums of 64 samples (mu, sigma).
    dts = [1 / 16, 1 / 32, 1 / 64, 1 / 128]
    errors = [gbm_gradient_errors(dt) for dt in dts]
    for column in zip(*errors):
        assert 0.8 <= loglog_slope(dts, list(column)) <= 1.3


@pytest.mark.slow  # about 25 s: 200 and 800 steps on per-sample grids, forwards and backwards
def test_stochastic_adjoint_approaches_backprop_as_dt_shrinks_at_the_solvers_strong_order():
    # Diagonal noise (strong order 1): the gap to Backprop's discrete gradient falls 4.2x when
    # dt falls 4x (2.9e-3 -> 6.9e-4 relative); it is the discretisation error of both.
    sde = NeuralSDE(DIAGONAL)
    path = nct.BrownianPath(0.0, 2.0, (BATCH, STATE), dtype=F64, seed=1)
    gaps, ts = [], PER_SAMPLE_TS
    for dt in (0.01, 0.0025):
        want = gradients(sde, path, ts, nct.Backprop(), solver=nct.StochasticHeun(), dt=dt)
        got = gradients(sde, path, ts, StochasticAdjoint(), solver=nct.StochasticHeun(), dt=dt)
        gaps.append(relative_error(got, want))
    assert 2.5 <= gaps[0] / gaps[1] <= 8
    assert gaps[1] < 2e-3


def test_stochastic_adjoint_matches_central_finite_differences_with_general_noise():
    sde = NeuralSDE(GENERAL)
    path = nct.BrownianPath(0.0, 2.0, (BATCH, NOISE), dtype=F64, seed=1)
    ts, dt = PER_SAMPLE_TS / 2, 0.005
    y0 = torch.linspace(-1.0, 1.0, BATCH * STATE, dtype=F64).reshape(BATCH, STATE)
    direction = torch.linspace(0.5, -0.5, BATCH * STATE, dtype=F64).reshape(BATCH, STATE)

    def loss(y0: torch.Tensor, scale: torch.Tensor, gradient) -> torch.Tensor:
        options = dict(solver=nct.StochasticHeun(), controller=nct.ConstantStep(dt), gradient=gradient, args=scale)
        return nct.solve(sde.term(path), y0, ts, **options).ys.sin().sum()

    x, scale = y0.clone().requires_grad_(True), torch.tensor(0.5, dtype=F64, requires_grad=True)
    grad_y0, grad_scale = torch.autograd.grad(loss(x, scale, StochasticAdjoint()), [x, scale])
    eps = 1e-5
    with torch.no_grad():
        fd_scale = (loss(y0, scale + eps, nct.Backprop()) - loss(y0, scale - eps, nct.Backprop())) / (2 * eps)
        fd_y0 = loss(y0 + eps * direction, scale, nct.Backprop()) - loss(y0 - eps * direction, scale, nct.Backprop())
    # Measured: 1e-4 relative at dt = 0.005 (the discretisation error; float rounding is 1e-10).
    torch.testing.assert_close(grad_scale, fd_scale, rtol=1e-3, atol=0)
    torch.testing.assert_close((grad_y0 * direction).sum(), fd_y0 / (2 * eps), rtol=1e-3, atol=0)


def test_stochastic_adjoint_refuses_ito_sdes_and_ode_terms_naming_them():
    path = nct.BrownianPath(0.0, 1.0, (BATCH, STATE), dtype=F64, seed=1)
    ito = nct.SDETerm(nct.ODETerm(lambda t, y, a: -y), nct.NoiseTerm(lambda t, y, a: 0.1 * y, path, DIAGONAL))
    y0 = torch.ones(BATCH, STATE, dtype=F64, requires_grad=True)
    ts = torch.tensor([0.0, 1.0], dtype=F64)
    with pytest.raises(nct.IncompatibleTermError, match="Stratonovich SDEs .* got an SDETerm with SDEType.ITO"):
        nct.solve(
            ito, y0, ts, solver=nct.EulerMaruyama(), controller=nct.ConstantStep(0.1), gradient=StochasticAdjoint()
        )
    with pytest.raises(nct.IncompatibleTermError, match="got a ODETerm"):
        nct.solve(
            nct.ODETerm(lambda t, y, a: -y),
            y0,
            ts,
            solver=nct.RK4(),
            controller=nct.ConstantStep(0.1),
            gradient=StochasticAdjoint(),
        )


def test_stochastic_adjoint_refuses_a_solver_without_general_noise_naming_it():
    path = nct.BrownianPath(0.0, 1.0, (BATCH, STATE), dtype=F64, seed=1)
    term = nct.SDETerm(nct.ODETerm(lambda t, y, a: -y), nct.NoiseTerm(lambda t, y, a: 0.1 * y, path, DIAGONAL, STRAT))
    y0 = torch.ones(BATCH, STATE, dtype=F64, requires_grad=True)
    with pytest.raises(nct.IncompatibleTermError, match="general noise, with the forward solver Milstein"):
        nct.solve(
            term,
            y0,
            torch.tensor([0.0, 1.0], dtype=F64),
            solver=nct.Milstein(),
            controller=nct.ConstantStep(0.1),
            gradient=StochasticAdjoint(),
        )


def test_stochastic_adjoint_refuses_fields_that_mix_samples():
    path = nct.BrownianPath(0.0, 1.0, (BATCH, STATE), dtype=F64, seed=1)
    term = nct.SDETerm(
        nct.ODETerm(lambda t, y, a: -y + y.mean(dim=0)),
        nct.NoiseTerm(lambda t, y, a: 0.1 * y, path, DIAGONAL, STRAT),
    )
    y0 = torch.linspace(0, 1, BATCH * STATE, dtype=F64).reshape(BATCH, STATE).requires_grad_(True)
    with pytest.raises(nct.IncompatibleTermError, match="one sample at a time"):
        nct.solve(
            term,
            y0,
            torch.tensor([0.0, 1.0], dtype=F64),
            solver=nct.StochasticHeun(),
            controller=nct.ConstantStep(0.1),
            gradient=StochasticAdjoint(),
        )
