"""SDE gradients: the reversible adjoint of ReversibleHeun against Backprop, its memory, and refusals."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import neuralct as nct
from benchmarks.memory import Field, peak_mib
from neuralct.gradients import ReversibleAdjoint

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
