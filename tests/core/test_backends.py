"""The torchdiffeq backend: the same drift term solved by `torchdiffeq.odeint` agrees with
neuralct's own solvers; its errors, statistics and gradients."""

from __future__ import annotations

import pytest
import torch
from _tableaus import ThreeEighths
from torch import nn

import neuralct as nct
from neuralct.backends import TorchDiffEq
from neuralct.backends.torchdiffeq import available_methods
from neuralct.paths.interpolation import LinearPath

F64 = torch.float64
B, D = 4, 3
TIGHT = nct.PIDController(rtol=1e-10, atol=1e-10)


class Field(nn.Module):
    """A small nonlinear, time-dependent vector field with parameters."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(0.5 * torch.randn(D, D, generator=gen, dtype=F64))
        self.calls = 0

    def forward(self, t, y, args):
        self.calls += 1
        return torch.tanh(y @ self.weight) + torch.sin(t)[:, None]


def _problem(reverse: bool = False):
    y0 = torch.randn(B, D, generator=torch.Generator().manual_seed(1), dtype=F64)
    t = torch.linspace(0.0, 2.0, 6, dtype=F64)
    return nct.ODETerm(Field()), y0, t.flip(0) if reverse else t


@pytest.mark.parametrize("reverse", [False, True])
def test_dopri5_agrees_with_torchdiffeq_dopri5_at_tight_tolerance(reverse):
    term, y0, t = _problem(reverse)
    ours = nct.solve(term, y0, t, solver=nct.Dopri5(), controller=TIGHT)
    theirs = nct.solve(term, y0, t, solver=TorchDiffEq("dopri5"), controller=TIGHT)
    assert theirs.status.eq(nct.Status.SUCCESS).all()
    assert (ours.ys - theirs.ys).abs().max() < 1e-7


@pytest.mark.parametrize(
    "ours, method", [(nct.Euler(), "euler"), (nct.Midpoint(), "midpoint"), (ThreeEighths(), "rk4")]
)
@pytest.mark.parametrize("reverse", [False, True])
def test_the_same_fixed_step_method_agrees_to_rounding(ours, method, reverse):
    """On the grid of ConstantStep(dt) (steps of dt, shortened onto save times) the same
    method gives the same numbers."""
    term, y0, t = _problem(reverse)
    a = nct.solve(term, y0, t, solver=ours, controller=nct.ConstantStep(0.03))
    b = nct.solve(term, y0, t, solver=TorchDiffEq(method), controller=nct.ConstantStep(0.03))
    assert (a.ys - b.ys).abs().max() < 1e-13
    assert torch.equal(a.stats.steps, b.stats.steps)


def test_classic_rk4_and_torchdiffeq_rk4_agree_to_their_step_error():
    """torchdiffeq's "rk4" is Kutta's 3/8 rule: both are fourth order, so they differ by
    O(dt^4), not by rounding."""
    term, y0, t = _problem()
    gaps = []
    for dt in (0.1, 0.05):
        ours = nct.solve(term, y0, t, solver=nct.RK4(), controller=nct.ConstantStep(dt))
        theirs = nct.solve(term, y0, t, solver=TorchDiffEq("rk4"), controller=nct.ConstantStep(dt))
        gaps.append(float((ours.ys - theirs.ys).abs().max().detach()))
    assert gaps[1] < 1e-6 and 8 < gaps[0] / gaps[1] < 32


def test_control_term_with_jump_times_agrees_with_torchdiffeq():
    gen = torch.Generator().manual_seed(2)
    knots = torch.linspace(0.0, 2.0, 9, dtype=F64)
    path = LinearPath(torch.randn(B, 9, 2, generator=gen, dtype=F64), knots)
    weight = torch.randn(D, D, 2, generator=gen, dtype=F64) * 0.5
    term = nct.ControlTerm(lambda t, z, args: torch.tanh(torch.einsum("ijc,bj->bic", weight, z)), path)
    y0 = torch.randn(B, D, generator=gen, dtype=F64)
    t = torch.linspace(0.0, 2.0, 5, dtype=F64)
    ours = nct.solve(term, y0, t, solver=nct.Dopri5(), controller=TIGHT)
    theirs = nct.solve(term, y0, t, solver=TorchDiffEq("dopri5"), controller=TIGHT)
    assert (ours.ys - theirs.ys).abs().max() < 1e-7
    fixed = nct.ConstantStep(0.07)
    ours = nct.solve(term, y0, t, solver=nct.Midpoint(), controller=fixed)
    theirs = nct.solve(term, y0, t, solver=TorchDiffEq("midpoint"), controller=fixed)
    assert (ours.ys - theirs.ys).abs().max() < 1e-12


def test_stats_count_vector_field_calls_and_steps():
    term, y0, t = _problem()
    sol = nct.solve(term, y0, t, solver=TorchDiffEq("dopri5"), controller=nct.PIDController(rtol=1e-6, atol=1e-8))
    assert torch.equal(sol.stats.vf_evals, torch.full((B,), term.f.calls))
    assert torch.equal(sol.stats.steps, sol.stats.accepted + sol.stats.rejected)
    assert int(sol.stats.accepted[0]) > 0
    assert sol.ys.shape == (B, len(t), D) and torch.equal(sol.ts, t.expand(B, -1))


def test_max_steps_fails_every_sample_with_a_status():
    term, y0, t = _problem()
    sol = nct.solve(term, y0, t, solver=TorchDiffEq("dopri5"), controller=TIGHT, max_steps=5, throw=False)
    assert sol.status.eq(nct.Status.MAX_STEPS).all()
    assert sol.stats.steps.eq(5).all()
    assert sol.ys[:, 1:].isnan().all() and torch.equal(sol.ys[:, 0], y0)
    assert (sol.t_final > t[0]).all() and (sol.t_final < t[-1]).all()
    with pytest.raises(nct.SolveFailed, match="raise max_steps"):
        nct.solve(term, y0, t, solver=TorchDiffEq("dopri5"), controller=TIGHT, max_steps=5)


def test_a_non_finite_state_is_reported_not_returned_as_success():
    y0 = torch.ones(B, D, dtype=F64)
    t = torch.linspace(0.0, 1.0, 3, dtype=F64)
    term = nct.ODETerm(lambda t, y, args: torch.where(t[:, None] > 0.3, torch.nan, 1.0) * y)
    for solver, controller in ((TorchDiffEq("dopri5"), TIGHT), (TorchDiffEq("euler"), nct.ConstantStep(0.1))):
        sol = nct.solve(term, y0, t, solver=solver, controller=controller, throw=False)
        assert not sol.succeeded.any()


@pytest.mark.parametrize("adjoint", [False, True])
def test_gradients_flow_and_match_backprop_through_dopri5(adjoint):
    term, y0, t = _problem()
    y0 = y0.clone().requires_grad_(True)
    ours = nct.solve(term, y0, t, solver=nct.Dopri5(), controller=TIGHT)
    expected = torch.autograd.grad(ours.ys[:, -1].square().sum(), (y0, term.f.weight))
    theirs = nct.solve(term, y0, t, solver=TorchDiffEq("dopri5", adjoint=adjoint), controller=TIGHT)
    got = torch.autograd.grad(theirs.ys[:, -1].square().sum(), (y0, term.f.weight))
    for g, e in zip(got, expected):
        assert torch.allclose(g, e, atol=1e-6)


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(nct.InvalidInputError, match="dopri5.*got 'dopri6'"):
        TorchDiffEq("dopri6")
    assert {"dopri5", "bosh3", "rk4", "euler"} <= set(available_methods())
    assert "scipy_solver" not in available_methods()
    with pytest.raises(nct.InvalidInputError, match="`adjoint` must be a bool"):
        TorchDiffEq("dopri5", adjoint="yes")


def test_per_sample_time_grids_are_refused():
    term, y0, t = _problem()
    per_sample = t.expand(B, -1).clone()
    per_sample[2] *= 1.5
    with pytest.raises(nct.InvalidInputError, match="shared by the batch.*sample 2"):
        nct.solve(term, y0, per_sample, solver=TorchDiffEq("dopri5"), controller=TIGHT)


@pytest.mark.parametrize(
    "solver, controller, options, error, message",
    [
        (TorchDiffEq("rk4"), TIGHT, {}, nct.IncompatibleTermError, "no error estimate"),
        (TorchDiffEq("dopri5"), nct.ConstantStep(0.1), {}, nct.InvalidInputError, "needs a PIDController"),
        (TorchDiffEq("dopri5"), nct.PIDController(pcoeff=0.2), {}, nct.InvalidInputError, "integral controller"),
        (TorchDiffEq("dopri5"), nct.PIDController(dt_min=1e-3), {}, nct.InvalidInputError, "dt_min=0"),
        (TorchDiffEq("dopri5"), TIGHT, {"dense": True}, nct.InvalidInputError, "no dense output"),
        (TorchDiffEq("euler"), nct.ConstantStep(0.1), {"dt0": 0.01}, nct.InvalidInputError, "`dt0` must be None"),
    ],
)
def test_controllers_torchdiffeq_cannot_follow_are_refused(solver, controller, options, error, message):
    term, y0, t = _problem()
    with pytest.raises(error, match=message):
        nct.solve(term, y0, t, solver=solver, controller=controller, **options)


def test_options_reach_torchdiffeq():
    term, y0, t = _problem()
    capped = nct.solve(term, y0, t, solver=TorchDiffEq("dopri5"), controller=nct.PIDController(dt_max=0.01))
    assert int(capped.stats.accepted[0]) >= 200
    first = nct.solve(term, y0, t, solver=TorchDiffEq("bosh3"), controller=nct.PIDController(), dt0=1e-4)
    assert first.succeeded.all()
