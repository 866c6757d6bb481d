"""Stiff problems: explicit solvers fail per sample and say why; implicit Euler solves them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import neuralct as nct

D = torch.float64
SPAN = 10.0


def relaxation(t: torch.Tensor, y: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """$y' = -\\lambda_b (y - \\cos t)$: stiff for large per-sample rates $\\lambda_b$."""
    return -rate * (y - torch.cos(t)[:, None])


def relaxation_reference(rate: float, times: np.ndarray) -> np.ndarray:
    ref = solve_ivp(
        lambda t, y: -rate * (y - np.cos(t)),
        (times[0], times[-1]),
        [0.0],
        method="Radau",
        rtol=1e-11,
        atol=1e-13,
        t_eval=times,
    )
    return ref.y[0]


RATES = torch.tensor([[1000.0], [1.0], [2.0]], dtype=D)  # sample 0 is stiff


def test_stiff_sample_runs_out_of_steps_under_an_explicit_solver_while_the_others_succeed():
    sol = nct.solve(
        nct.ODETerm(relaxation),
        torch.zeros(3, 1, dtype=D),
        torch.linspace(0, SPAN, 11, dtype=D),
        solver=nct.Tsit5(),
        controller=nct.PIDController(rtol=1e-6, atol=1e-8),
        max_steps=500,
        throw=False,
        args=RATES,
    )
    assert sol.status.tolist() == [nct.Status.MAX_STEPS, nct.Status.SUCCESS, nct.Status.SUCCESS]
    assert int(sol.stats.steps[0]) == 500 and float(sol.t_final[0]) < SPAN
    assert torch.isfinite(sol.ys[1:]).all()


def test_stiff_failure_with_throw_names_the_sample_the_status_and_what_to_change():
    with pytest.raises(nct.SolveFailed) as info:
        nct.solve(
            nct.ODETerm(relaxation),
            torch.zeros(3, 1, dtype=D),
            torch.linspace(0, SPAN, 11, dtype=D),
            solver=nct.Tsit5(),
            controller=nct.PIDController(rtol=1e-6, atol=1e-8),
            max_steps=500,
            args=RATES,
        )
    message = str(info.value)
    assert "sample 0: MAX_STEPS" in message and "sample 1" not in message
    assert "raise max_steps (500)" in message and "implicit solver" in message
    assert info.value.solution.status.tolist() == [nct.Status.MAX_STEPS, 0, 0]


def test_implicit_euler_solves_the_stiff_problem_in_few_steps_and_matches_radau():
    times = torch.linspace(0, SPAN, 11, dtype=D)
    sol = nct.solve(
        nct.ODETerm(relaxation),
        torch.zeros(3, 1, dtype=D),
        times,
        solver=nct.ImplicitEuler(),
        controller=nct.PIDController(rtol=1e-3, atol=1e-6),
        args=RATES,
    )
    assert bool(sol.succeeded.all())
    # Tsit5 would need ~3000 steps for the stiff sample (stability-limited dt ~ 3.3 / 1000).
    assert int(sol.stats.steps[0]) < 200
    reference = relaxation_reference(1000.0, times.numpy())
    assert np.abs(sol.ys[0, :, 0].numpy() - reference).max() < 2e-3


def test_implicit_euler_converges_at_order_one_with_constant_steps():
    term = nct.ODETerm(lambda t, y, args: -(y**2) + torch.sin(t)[:, None])
    exact = solve_ivp(lambda t, y: -(y**2) + np.sin(t), (0, 1), [1.0], method="Radau", rtol=1e-12, atol=1e-13).y[0, -1]
    dts = np.array([0.1, 0.05, 0.025, 0.0125])
    errors = []
    for dt in dts:
        sol = nct.solve(
            term,
            torch.ones(1, 1, dtype=D),
            torch.tensor([0.0, 1.0], dtype=D),
            solver=nct.ImplicitEuler(),
            controller=nct.ConstantStep(float(dt)),
        )
        errors.append(abs(float(sol.ys[0, -1, 0]) - exact))
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert abs(slope - 1.0) < 0.3, (slope, errors)


def cubic_or_linear(t: torch.Tensor, y: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """$y' = -k y^3 - c y$ with per-sample `(k, c)`: very nonlinear for large k, linear for k = 0."""
    return -coefficients[:, :1] * y**3 - coefficients[:, 1:] * y


def test_newton_non_convergence_fails_only_the_affected_sample():
    coefficients = torch.tensor([[1e4, 0.0], [0.0, 1.0]], dtype=D)
    sol = nct.solve(
        nct.ODETerm(cubic_or_linear),
        torch.ones(2, 1, dtype=D),
        torch.tensor([0.0, 1.0], dtype=D),
        solver=nct.ImplicitEuler(max_newton_iters=2),
        controller=nct.ConstantStep(0.1),
        throw=False,
        args=coefficients,
    )
    assert sol.status.tolist() == [nct.Status.NEWTON_FAILED, nct.Status.SUCCESS]
    torch.testing.assert_close(sol.ys[1, -1, 0], torch.tensor(1.1**-10, dtype=D))
    assert float(sol.t_final[0]) == 0.0


def test_newton_failure_under_an_adaptive_controller_shrinks_the_step_instead():
    coefficients = torch.tensor([[1e4, 0.0], [0.0, 1.0]], dtype=D)
    sol = nct.solve(
        nct.ODETerm(cubic_or_linear),
        torch.ones(2, 1, dtype=D),
        torch.tensor([0.0, 1.0], dtype=D),
        solver=nct.ImplicitEuler(max_newton_iters=4),
        controller=nct.PIDController(rtol=1e-3, atol=1e-6),
        dt0=0.1,
        args=coefficients,
    )
    # Newton needs about 10 iterations at the first step (h k = 1000); the step is cut instead.
    assert bool(sol.succeeded.all()) and int(sol.stats.rejected[0]) > 0
    exact = (1 + 2 * 1e4) ** -0.5  # y' = -k y^3, y(0) = 1
    assert abs(float(sol.ys[0, -1, 0]) - exact) < 1e-3


def test_implicit_euler_result_of_a_sample_does_not_depend_on_its_batch_mates():
    times = torch.linspace(0, 2, 5, dtype=D)
    batch = nct.solve(
        nct.ODETerm(relaxation),
        torch.zeros(3, 1, dtype=D),
        times,
        solver=nct.ImplicitEuler(),
        controller=nct.PIDController(rtol=1e-3, atol=1e-6),
        args=RATES,
    )
    alone = nct.solve(
        nct.ODETerm(relaxation),
        torch.zeros(1, 1, dtype=D),
        times,
        solver=nct.ImplicitEuler(),
        controller=nct.PIDController(rtol=1e-3, atol=1e-6),
        args=RATES[1:2],
    )
    torch.testing.assert_close(alone.ys[0], batch.ys[1], rtol=1e-12, atol=1e-14)
    assert int(alone.stats.steps[0]) == int(batch.stats.steps[1])


def test_implicit_euler_gradients_match_finite_differences():
    weight = torch.tensor([[-3.0, 1.0], [-1.0, -2.0]], dtype=D, requires_grad=True)
    term = nct.ODETerm(lambda t, y, args: torch.tanh(y @ args.T))
    times = torch.tensor([[0.0, 0.3, 0.5], [0.1, 0.2, 0.6]], dtype=D)
    y0 = torch.randn(2, 2, dtype=D, requires_grad=True)

    def run(y0, weight):
        return nct.solve(
            term,
            y0,
            times,
            solver=nct.ImplicitEuler(newton_tol=1e-13, max_newton_iters=20),
            controller=nct.ConstantStep(0.05),
            args=weight,
        ).ys

    assert torch.autograd.gradcheck(run, (y0, weight), fast_mode=True)


def test_implicit_euler_dense_output_passes_through_the_steps():
    times = torch.linspace(0, 1, 3, dtype=D)
    sol = nct.solve(
        nct.ODETerm(relaxation),
        torch.zeros(3, 1, dtype=D),
        times,
        solver=nct.ImplicitEuler(),
        controller=nct.ConstantStep(0.25),
        dense=True,
        args=RATES,
    )
    torch.testing.assert_close(sol.evaluate(times.expand(3, -1)), sol.ys)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"newton_tol": 0.0}, "`newton_tol` must be None or a positive finite number"),
        ({"max_newton_iters": 0}, "`max_newton_iters` must be a positive int"),
        ({"max_newton_iters": 2.5}, "`max_newton_iters` must be a positive int"),
    ],
)
def test_implicit_euler_rejects_bad_options_by_name(kwargs, message):
    with pytest.raises(nct.InvalidInputError, match=message):
        nct.ImplicitEuler(**kwargs)


def test_newton_judges_convergence_divergence_and_slow_contraction_per_sample():
    # After iteration k with update sizes |D_k| (size) and |D_k-1| (previous), in tolerance units:
    # converged when theta/(1-theta)|D_k| <= 1; bad when diverging (theta >= 1, NaN) or when even
    # the iterations left cannot bring theta^left theta/(1-theta)|D_k| to 1 (Hairer & Wanner IV.8).
    from neuralct.solvers.rk.newton import _judge

    size = torch.tensor([0.5, 5.0, 0.2, 0.1, float("nan"), 0.9, 2.0], dtype=torch.float64)
    previous = torch.tensor([1.0, 10.0, 0.2, 0.09, 1.0, 1.0, 2.5], dtype=torch.float64)
    theta, converged, bad = _judge(size, previous, left=3)
    torch.testing.assert_close(theta, size / previous, equal_nan=True)
    assert converged.tolist() == [True, False, False, False, False, False, False]
    # 5 after 10: not converged (theta/(1-theta)|D| = 5), but at theta = 1/2 three more iterations
    # bring it to 0.625: not bad. theta = 1 and a slightly growing small update diverge; NaN is bad;
    # 0.9 after 1.0 is too slow for 3 iterations; 2.0 after 2.5 (theta = 0.8) needs
    # 0.8^4 * 2 = 0.82 > 0.2 = 1 - theta: too slow.
    assert bad.tolist() == [False, False, True, True, True, True, True]
