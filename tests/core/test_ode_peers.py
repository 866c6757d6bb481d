"""Cross-checks against the peer libraries torchdiffeq (0.2.x) and torchode (1.0.x).

What each comparison can and cannot show:

* torchdiffeq's fixed-grid `euler`, `midpoint` and `heun2` are the same methods as ours, so
  on a grid that contains the save times they agree to roundoff.
* torchdiffeq's `rk4` is the 3/8-rule variant (`rk4_alt_step_func`); no public method name
  gives the classic tableau that `nct.RK4` uses. The two agree to 1e-6 at a small step where
  both are accurate and differ at a large one. A classic step written out in this file pins
  our RK4 to the classic tableau exactly.
* torchdiffeq measures the error with one RMS norm over the whole batch (a shared step), and
  interpolates its dopri8/bosh3 outputs with a lower-order polynomial, so adaptive results
  are compared one sample at a time, with torchdiffeq told to step onto the save times
  (`step_t`), at a tolerance where both are accurate.
* torchode is per-sample like us and accepts per-sample `t_eval`; its Tsit5 takes the same
  steps as ours, so step counts are compared exactly.
"""

from __future__ import annotations

import pytest
import torch
import torchdiffeq
import torchode

import neuralct as nct

F64 = torch.float64


def van_der_pol(t, y):
    return torch.stack([y[:, 1], (1 - y[:, 0] ** 2) * y[:, 1] - y[:, 0]], dim=1)


TERM = nct.ODETerm(lambda t, y, args: van_der_pol(t, y))
Y0 = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.5, -1.0], [-1.0, 0.3]], dtype=F64)
T = torch.linspace(0, 5, 11, dtype=F64)


def torchdiffeq_solve(y0, t, method, **kwargs):
    """torchdiffeq's `[K, B, D]` output as `[B, K, D]`."""
    return torchdiffeq.odeint(lambda t, y: van_der_pol(t, y), y0, t, method=method, **kwargs).transpose(0, 1)


@pytest.mark.parametrize(
    ("method", "solver"), [("euler", nct.Euler()), ("midpoint", nct.Midpoint()), ("heun2", nct.Heun())]
)
@pytest.mark.parametrize("dt", [0.25, 0.01])
def test_fixed_step_methods_equal_torchdiffeqs(method, solver, dt):
    theirs = torchdiffeq_solve(Y0, T, method, options=dict(step_size=dt))
    ours = nct.solve(TERM, Y0, T, solver=solver, controller=nct.ConstantStep(dt))
    torch.testing.assert_close(ours.ys, theirs, rtol=1e-12, atol=1e-12)
    assert ours.stats.steps.tolist() == [round(5 / dt)] * 4


def test_rk4_agrees_with_torchdiffeqs_three_eighths_rk4_at_a_small_step():
    theirs = torchdiffeq_solve(Y0, T, "rk4", options=dict(step_size=0.01))
    ours = nct.solve(TERM, Y0, T, solver=nct.RK4(), controller=nct.ConstantStep(0.01))
    torch.testing.assert_close(ours.ys, theirs, rtol=0, atol=1e-6)
    # at a large step the two fourth-order tableaus visibly differ: they are not the same method
    coarse_theirs = torchdiffeq_solve(Y0, T, "rk4", options=dict(step_size=0.25))
    coarse_ours = nct.solve(TERM, Y0, T, solver=nct.RK4(), controller=nct.ConstantStep(0.25))
    assert float((coarse_ours.ys - coarse_theirs).abs().max()) > 1e-5


def classic_rk4(y, t, dt, steps):
    """The classic Runge-Kutta step (Kutta 1901), written out for reference."""
    for _ in range(steps):
        k1 = van_der_pol(t, y)
        k2 = van_der_pol(t + dt / 2, y + dt / 2 * k1)
        k3 = van_der_pol(t + dt / 2, y + dt / 2 * k2)
        k4 = van_der_pol(t + dt, y + dt * k3)
        y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        t = t + dt
    return y


def test_rk4_is_the_classic_tableau():
    ours = nct.solve(TERM, Y0, torch.tensor([0.0, 5.0], dtype=F64), solver=nct.RK4(), controller=nct.ConstantStep(0.25))
    expected = classic_rk4(Y0, torch.zeros(4, dtype=F64), 0.25, 20)
    torch.testing.assert_close(ours.ys[:, -1], expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(
    ("method", "solver", "rtol", "atol", "agree"),
    [
        ("dopri5", nct.Dopri5(), 1e-10, 1e-12, 5e-9),
        ("dopri8", nct.Dopri8(), 1e-10, 1e-12, 5e-9),
        ("bosh3", nct.Bosh3(), 1e-7, 1e-9, 2e-7),
    ],
    ids=["dopri5", "dopri8", "bosh3"],
)
def test_adaptive_solvers_agree_with_torchdiffeq_at_tight_tolerance(method, solver, rtol, atol, agree):
    # bosh3 (third order) needs ~20000 steps at 1e-10, so it is compared at 1e-7
    for b in range(2):
        theirs = torchdiffeq_solve(Y0[b : b + 1], T, method, rtol=rtol, atol=atol, options=dict(step_t=T))
        ours = nct.solve(
            TERM, Y0[b : b + 1], T, solver=solver, controller=nct.PIDController(rtol=rtol, atol=atol), max_steps=20000
        )
        torch.testing.assert_close(ours.ys, theirs, rtol=0, atol=agree)


def torchode_solve(method, y0, t_eval, rtol, atol):
    term = torchode.ODETerm(van_der_pol)
    solver = torchode.AutoDiffAdjoint(method(term=term), torchode.IntegralController(atol=atol, rtol=rtol, term=term))
    return solver.solve(torchode.InitialValueProblem(y0=y0, t_eval=t_eval))


def test_dopri5_agrees_with_torchode_and_torchdiffeq_at_tight_tolerance():
    rtol, atol = 1e-10, 1e-12
    ours = nct.solve(TERM, Y0, T, solver=nct.Dopri5(), controller=nct.PIDController(rtol=rtol, atol=atol))
    theirs = torchode_solve(torchode.Dopri5, Y0, T.expand(4, -1), rtol, atol)
    assert bool((theirs.status == 0).all())
    torch.testing.assert_close(ours.ys, theirs.ys, rtol=0, atol=1e-8)
    tdq = torchdiffeq_solve(Y0, T, "dopri5", rtol=rtol, atol=atol)
    torch.testing.assert_close(ours.ys, tdq, rtol=0, atol=1e-8)


PER_SAMPLE_T = torch.tensor(
    [
        [0.0, 0.3, 1.0, 2.5],
        [1.0, 1.7, 2.0, 4.0],
        [0.2, 0.4, 0.6, 0.8],
        [3.0, 2.0, 1.5, -2.0],  # backward in time
    ],
    dtype=F64,
)


@pytest.mark.parametrize(("rtol", "atol"), [(1e-4, 1e-7), (1e-6, 1e-9), (1e-10, 1e-12)])
def test_tsit5_with_per_sample_grids_takes_torchodes_steps(rtol, atol):
    theirs = torchode_solve(torchode.Tsit5, Y0, PER_SAMPLE_T, rtol, atol)
    ours = nct.solve(TERM, Y0, PER_SAMPLE_T, solver=nct.Tsit5(), controller=nct.PIDController(rtol=rtol, atol=atol))
    assert bool((theirs.status == 0).all()) and bool(ours.succeeded.all())
    assert ours.stats.steps.tolist() == theirs.stats["n_steps"].tolist()
    assert ours.stats.accepted.tolist() == theirs.stats["n_accepted"].tolist()
    torch.testing.assert_close(ours.ys, theirs.ys, rtol=0, atol=max(1e-10, 1e-6 * rtol))


def test_dopri5_with_per_sample_grids_agrees_with_torchode():
    rtol, atol = 1e-10, 1e-12
    theirs = torchode_solve(torchode.Dopri5, Y0, PER_SAMPLE_T, rtol, atol)
    ours = nct.solve(TERM, Y0, PER_SAMPLE_T, solver=nct.Dopri5(), controller=nct.PIDController(rtol=rtol, atol=atol))
    torch.testing.assert_close(ours.ys, theirs.ys, rtol=0, atol=1e-8)
    # similar cost: same pair and controller family, different error-estimate details
    ratio = ours.stats.steps.double() / theirs.stats["n_steps"].double()
    assert bool(((ratio > 0.8) & (ratio < 1.25)).all()), ratio
