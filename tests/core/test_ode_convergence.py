"""Empirical convergence order of every explicit Runge-Kutta method against closed-form solutions.

Each method runs with `ConstantStep(dt)` on a nonlinear problem whose exact solution is known;
the log-log slope of the global error at the final time against `dt`, fitted over four step
sizes in the method's asymptotic range (well above float64 roundoff), must be within 0.3 of
`solver.order`. Every problem is nonlinear, so the nonlinear order conditions of each tableau
are exercised, not only the linear ones.

The step sizes are chosen per method: Tsitouras 5(4) and Dormand-Prince 8(7) were built to have
tiny principal error coefficients, so on most problems their error curve only reaches its
asymptotic slope at small steps, where it is not yet swamped by roundoff.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import ellipj, ellipk

import neuralct as nct

DTYPE = torch.float64


# --- problems with closed-form solutions -------------------------------------------------


def rational_field(t, y, args):
    """$y' = -2 t y^2$, $y(0) = 1$: $y(t) = 1 / (1 + t^2)$ (nonlinear, non-autonomous)."""
    return -2 * t[:, None] * y**2


def rational_exact(t: float) -> np.ndarray:
    return np.array([1.0 / (1.0 + t * t)])


def logistic_field(t, y, args):
    """$y' = 4 y (1 - y)$, $y(0) = 0.01$: $y(t) = 1 / (1 + 99 e^{-4t})$."""
    return 4 * y * (1 - y)


def logistic_exact(t: float) -> np.ndarray:
    return np.array([1.0 / (1.0 + 99.0 * math.exp(-4.0 * t))])


def pendulum_field(t, y, args):
    """$\\theta'' = -\\sin\\theta$ as a first-order system $(\\theta, \\omega)$."""
    return torch.stack([y[:, 1], -torch.sin(y[:, 0])], dim=1)


def pendulum_exact(theta0: float):
    """Released at rest from `theta0`: $\\theta(t) = 2 \\arcsin(k\\,\\mathrm{sn}(K - t, k^2))$,
    $\\omega(t) = -2 k\\,\\mathrm{cn}(K - t, k^2)$ with $k = \\sin(\\theta_0 / 2)$."""
    k = math.sin(theta0 / 2)
    m = k * k
    quarter = ellipk(m)

    def exact(t: float) -> np.ndarray:
        sn, cn, _, _ = ellipj(quarter - t, m)
        return np.array([2 * math.asin(k * sn), -2 * k * cn])

    return exact


PROBLEMS = {
    "rational": (rational_field, [1.0], rational_exact, 3.0),
    "logistic": (logistic_field, [0.01], logistic_exact, 2.0),
    "pendulum2": (pendulum_field, [2.0, 0.0], pendulum_exact(2.0), 20.0),
    "pendulum3": (pendulum_field, [3.0, 0.0], pendulum_exact(3.0), 5.0),
}

# solver -> (problem, numbers of steps over the span); asymptotic ranges found by scanning.
CASES = {
    nct.Euler: ("rational", [32, 64, 128, 256]),
    nct.Midpoint: ("rational", [32, 64, 128, 256]),
    nct.Heun: ("rational", [32, 64, 128, 256]),
    nct.Ralston: ("rational", [32, 64, 128, 256]),
    nct.Bosh3: ("rational", [32, 64, 128, 256]),
    nct.RK4: ("rational", [16, 32, 64, 128]),
    nct.Dopri5: ("logistic", [24, 32, 48, 64]),
    nct.Tsit5: ("pendulum2", [128, 181, 256, 362]),
    nct.Dopri8: ("pendulum3", [8, 10, 12, 16]),
}


def fixed_step_error(solver, problem: str, steps: int, save_times=None) -> float:
    """Largest absolute error over the save times of a `ConstantStep(T / steps)` solve."""
    field, y0, exact, span = PROBLEMS[problem]
    t = torch.tensor([0.0, span] if save_times is None else save_times, dtype=DTYPE)
    sol = nct.solve(
        nct.ODETerm(field),
        torch.tensor([y0], dtype=DTYPE),
        t,
        solver=solver,
        controller=nct.ConstantStep(span / steps),
    )
    reference = np.stack([exact(float(tk)) for tk in t[1:]])
    return float(np.abs(sol.ys[0, 1:].numpy() - reference).max())


def fitted_slope(dts, errors) -> float:
    return float(np.polyfit(np.log(dts), np.log(errors), 1)[0])


@pytest.mark.parametrize("solver_cls", list(CASES), ids=lambda cls: cls.__name__)
def test_global_error_falls_with_the_declared_order(solver_cls):
    solver = solver_cls()
    problem, steps = CASES[solver_cls]
    span = PROBLEMS[problem][3]
    errors = [fixed_step_error(solver, problem, n) for n in steps]
    assert min(errors) > 1e-12, f"errors {errors} reach roundoff; the fit would be meaningless"
    slope = fitted_slope([span / n for n in steps], errors)
    assert abs(slope - solver.order) <= 0.3, f"{solver_cls.__name__}: slope {slope:.3f}, errors {errors}"


@pytest.mark.parametrize("solver_cls", [nct.Euler, nct.Heun, nct.RK4, nct.Bosh3, nct.Dopri5], ids=lambda c: c.__name__)
def test_order_holds_at_save_times_that_are_not_multiples_of_dt(solver_cls):
    # The loop shortens the step to land on each save time instead of interpolating, so the
    # outputs at off-grid save times keep the method's order (torchdiffeq PR #82 pitfall).
    solver = solver_cls()
    problem, steps = ("logistic", [24, 32, 48, 64]) if solver_cls is nct.Dopri5 else ("rational", [32, 64, 128, 256])
    span = PROBLEMS[problem][3]
    saves = [0.0, 0.1 * math.pi, 0.37 * span, 0.5 * span + 1e-3, math.e * span / 3.0, span]
    dts = [span / n for n in steps]
    assert all(abs(s / dt - round(s / dt)) > 1e-3 for s in saves[1:-1] for dt in dts)
    errors = [fixed_step_error(solver, problem, n, saves) for n in steps]
    slope = fitted_slope(dts, errors)
    assert abs(slope - solver.order) <= 0.3, f"{solver_cls.__name__}: slope {slope:.3f}, errors {errors}"


def test_save_times_do_not_change_the_steps_between_them_more_than_needed():
    # With every save time on the dt grid, the solve takes exactly span / dt steps and the
    # result equals the solve that saves only the end point.
    solver, dt = nct.RK4(), 0.125
    y0 = torch.tensor([[1.0]], dtype=DTYPE)
    grid = torch.arange(0, 25, dtype=DTYPE) * dt
    term = nct.ODETerm(rational_field)
    dense_saves = nct.solve(term, y0, grid, solver=solver, controller=nct.ConstantStep(dt))
    end_only = nct.solve(term, y0, grid[[0, -1]], solver=solver, controller=nct.ConstantStep(dt))
    assert int(dense_saves.stats.steps[0]) == 24 == int(end_only.stats.steps[0])
    torch.testing.assert_close(dense_saves.ys[:, -1], end_only.ys[:, -1], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("solver_cls", list(CASES), ids=lambda cls: cls.__name__)
def test_fixed_step_vf_evals_match_the_tableau(solver_cls):
    solver = solver_cls()
    stages = solver.tableau.stages
    n = 10
    y0 = torch.tensor([[1.0]], dtype=DTYPE)
    sol = nct.solve(
        nct.ODETerm(rational_field),
        y0,
        torch.tensor([0.0, 1.0], dtype=DTYPE),
        solver=solver,
        controller=nct.ConstantStep(0.1),
    )
    per_step = stages - 1 if solver.tableau.fsal else stages
    # one evaluation for the initial slope, then (stages - 1) per step for FSAL tableaus and
    # stages per step otherwise (the end slope is computed once and carried into the next step)
    assert int(sol.stats.steps[0]) == n
    assert int(sol.stats.vf_evals[0]) == 1 + n * per_step
