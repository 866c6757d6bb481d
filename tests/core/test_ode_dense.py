"""Dense output (`dense=True`, `Solution.evaluate` / `Solution.derivative`).

The interpolant on one step of size h from an exact starting value has error
O(h^(q+1)) for an interpolant of order q: q = 4 for the Dormand-Prince (Shampine) and
Tsitouras continuous extensions, q = 3 for the cubic Hermite fallback used by the other
tableaus. The one-step tests below isolate that error from the method's own global error.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import neuralct as nct

F64 = torch.float64


def rational_field(t, y, args):
    """$y' = -2 t y^2$: $y(t) = 1 / (1 + t^2)$ from $y(0) = 1$."""
    return -2 * t[:, None] * y**2


def rational_exact(t: torch.Tensor) -> torch.Tensor:
    return 1 / (1 + t * t)


def forced_decay(t, y, args):
    return -y + torch.sin(t)[:, None]


def forced_decay_exact(t0: float, y0: float, t: torch.Tensor) -> torch.Tensor:
    c = (y0 - (math.sin(t0) - math.cos(t0)) / 2) * math.exp(t0)
    return c * torch.exp(-t) + (torch.sin(t) - torch.cos(t)) / 2


def exp_sin_field(t, y, args):
    """$y' = \\cos(t)\\, y$: $y(t) = e^{\\sin t}$ (non-autonomous)."""
    return torch.cos(t)[:, None] * y


@pytest.mark.parametrize(
    ("solver", "expected", "t0"),
    [(nct.Dopri5(), 5, 1.0), (nct.Tsit5(), 5, 1.0), (nct.RK4(), 4, 0.5), (nct.Dopri8(), 4, 0.5), (nct.Bosh3(), 4, 0.5)],
    ids=["Dopri5-quartic", "Tsit5-quartic", "RK4-hermite", "Dopri8-hermite", "Bosh3-hermite"],
)
def test_one_step_interpolant_error_falls_with_the_dense_order(solver, expected, t0):
    # Starting points where the error is in its asymptotic range for these step sizes
    # (found by scanning; the slopes there are 4.0-4.1 and 5.0-5.1).
    assert solver.dense_order + 1 == expected
    steps = [0.2, 0.1, 0.05, 0.025]
    theta = torch.tensor([0.2, 0.5, 0.7], dtype=F64)
    errors = []
    for h in steps:
        y0 = torch.exp(torch.sin(torch.tensor([[t0]], dtype=F64)))
        t = torch.tensor([t0, t0 + h], dtype=F64)
        sol = nct.solve(nct.ODETerm(exp_sin_field), y0, t, solver=solver, controller=nct.ConstantStep(h), dense=True)
        assert int(sol.stats.steps[0]) == 1
        query = t0 + theta * h
        errors.append(float((sol.evaluate(query[None])[0, :, 0] - torch.exp(torch.sin(query))).abs().max()))
    assert min(errors) > 1e-13
    slope = float(np.polyfit(np.log(steps), np.log(errors), 1)[0])
    assert abs(slope - expected) <= 0.3, f"slope {slope:.3f}, errors {errors}"


@pytest.mark.parametrize("solver", [nct.Dopri5(), nct.Tsit5(), nct.Bosh3()], ids=lambda s: type(s).__name__)
def test_dense_output_at_off_grid_times_is_within_tolerance(solver):
    y0 = torch.tensor([[1.0], [-0.5]], dtype=F64)
    t = torch.tensor([[0.0, 1.0, 4.0], [2.0, 1.0, -1.0]], dtype=F64)
    sol = nct.solve(
        nct.ODETerm(forced_decay), y0, t, solver=solver, controller=nct.PIDController(rtol=1e-8, atol=1e-10), dense=True
    )
    fractions = torch.linspace(0.013, 0.987, 37, dtype=F64)
    query = t[:, :1] + fractions[None] * (t[:, -1:] - t[:, :1])
    got = sol.evaluate(query)[..., 0]
    for b in range(2):
        exact = forced_decay_exact(float(t[b, 0]), float(y0[b, 0]), query[b])
        assert float((got[b] - exact).abs().max()) <= 10 * (1e-10 + 1e-8 * float(exact.abs().max()))


def test_evaluate_takes_b_and_bk_times():
    y0 = torch.tensor([[1.0], [2.0], [0.5]], dtype=F64)
    t = torch.linspace(0, 2, 5, dtype=F64)
    sol = nct.solve(nct.ODETerm(forced_decay), y0, t, controller=nct.PIDController(rtol=1e-8, atol=1e-10), dense=True)
    single = torch.tensor([0.3, 1.1, 1.9], dtype=F64)
    many = torch.tensor([[0.3, 0.7], [1.1, 0.0], [1.9, 2.0]], dtype=F64)
    assert sol.evaluate(single).shape == (3, 1)
    assert sol.evaluate(many).shape == (3, 2, 1)
    assert sol.derivative(single).shape == (3, 1)
    assert sol.derivative(many).shape == (3, 2, 1)
    torch.testing.assert_close(sol.evaluate(single), sol.evaluate(many)[:, 0], rtol=0, atol=0)
    # the save times themselves give back the saved states
    torch.testing.assert_close(sol.evaluate(t.expand(3, -1)), sol.ys, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize(
    ("solver", "controller"),
    [
        (nct.Tsit5(), nct.PIDController(rtol=1e-8, atol=1e-10)),
        (nct.Dopri8(), nct.PIDController(rtol=1e-8, atol=1e-10)),
        (nct.RK4(), nct.ConstantStep(0.05)),
    ],
    ids=["Tsit5", "Dopri8", "RK4"],
)
def test_evaluate_at_save_times_equals_the_saved_states(solver, controller):
    y0 = torch.tensor([[1.0], [-0.5]], dtype=F64)
    t = torch.tensor([[0.0, 0.37, 1.0, 2.5], [3.0, 2.0, 1.3, 0.1]], dtype=F64)
    sol = nct.solve(nct.ODETerm(forced_decay), y0, t, solver=solver, controller=controller, dense=True)
    torch.testing.assert_close(sol.evaluate(t), sol.ys, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(
    "solver", [nct.Dopri5(), nct.Tsit5(), nct.Dopri8(), nct.Bosh3()], ids=lambda s: type(s).__name__
)
def test_derivative_matches_the_vector_field(solver):
    y0 = torch.tensor([[1.0], [-0.5]], dtype=F64)
    t = torch.tensor([[0.0, 3.0], [2.0, -1.0]], dtype=F64)
    sol = nct.solve(
        nct.ODETerm(forced_decay),
        y0,
        t,
        solver=solver,
        controller=nct.PIDController(rtol=1e-10, atol=1e-12),
        dense=True,
    )
    fractions = torch.linspace(0.0, 1.0, 41, dtype=F64)
    query = t[:, :1] + fractions[None] * (t[:, -1:] - t[:, :1])
    slope = sol.derivative(query)
    field = forced_decay(query.flatten(), sol.evaluate(query).flatten(0, 1), None).reshape(slope.shape)
    # The quartic interpolants' derivative is O(h^4) accurate; the cubic Hermite one only
    # O(h^3), which with Dopri8's long steps is far looser than the tolerance.
    bound = 1e-6 if solver.dense_order == 4 else 2e-3
    assert float(((slope - field).abs() / (1 + field.abs())).max()) <= bound
    # at the step ends the dense derivative is the slope the solver computed there
    ends = sol.dense.t1[:, :3]
    end_slope = sol.derivative(
        ends.clamp(min=torch.minimum(t[:, :1], t[:, -1:]), max=torch.maximum(t[:, :1], t[:, -1:]))
    )
    end_field = forced_decay(ends.flatten(), sol.evaluate(ends).flatten(0, 1), None).reshape(end_slope.shape)
    torch.testing.assert_close(end_slope, end_field, rtol=1e-9, atol=1e-9)


def test_dense_output_is_continuous_across_steps():
    y0 = torch.tensor([[1.0]], dtype=F64)
    t = torch.tensor([0.0, 5.0], dtype=F64)
    sol = nct.solve(nct.ODETerm(forced_decay), y0, t, controller=nct.PIDController(rtol=1e-6, atol=1e-8), dense=True)
    accepted_ends = sol.dense.t1[0, :-1][sol.dense.t1[0, :-1] < 5.0]
    assert len(accepted_ends) > 5
    eps = 1e-11
    left = sol.evaluate((accepted_ends - eps)[None])
    right = sol.evaluate((accepted_ends + eps)[None])
    torch.testing.assert_close(left, right, rtol=0, atol=1e-10)


def test_dense_output_skips_rejected_steps():
    # A huge first step is rejected several times; the records of the rejected attempts must
    # not leak into the interpolant.
    y0 = torch.tensor([[1.0]], dtype=F64)
    t = torch.tensor([0.0, 4.0], dtype=F64)
    sol = nct.solve(
        nct.ODETerm(forced_decay), y0, t, dt0=4.0, controller=nct.PIDController(rtol=1e-9, atol=1e-11), dense=True
    )
    assert int(sol.stats.rejected[0]) >= 1
    query = torch.linspace(0, 4, 101, dtype=F64)
    err = (sol.evaluate(query[None])[0, :, 0] - forced_decay_exact(0.0, 1.0, query)).abs().max()
    assert float(err) < 1e-8


def test_evaluate_outside_a_backward_row_raises():
    y0 = torch.tensor([[1.0], [1.0]], dtype=F64)
    t = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=F64)
    sol = nct.solve(nct.ODETerm(forced_decay), y0, t, dense=True)
    sol.evaluate(torch.tensor([0.5, 0.5], dtype=F64))
    with pytest.raises(nct.InvalidInputError, match=r"sample 1 asks t\[1, 0\] = 1.2, outside \[1, 0\]"):
        sol.evaluate(torch.tensor([0.5, 1.2], dtype=F64))
    with pytest.raises(nct.InvalidInputError, match=r"sample 0 asks t\[0, 0\] = -0.01"):
        sol.derivative(torch.tensor([-0.01, 0.5], dtype=F64))


def test_evaluate_of_a_failed_sample_covers_only_what_it_solved():
    y0 = torch.tensor([[4.0], [0.25]], dtype=F64)
    t = torch.tensor([0.0, 3.0], dtype=F64)
    sol = nct.solve(nct.ODETerm(lambda t, y, a: -torch.sqrt(y)), y0, t, dense=True, throw=False)
    assert sol.status.tolist()[0] == nct.Status.SUCCESS and sol.status.tolist()[1] != nct.Status.SUCCESS
    reached = float(sol.t_final[1])
    value = sol.evaluate(torch.tensor([2.0, reached / 2], dtype=F64))
    torch.testing.assert_close(
        value[:, 0], torch.tensor([1.0, (0.5 - reached / 4) ** 2], dtype=F64), rtol=1e-4, atol=1e-6
    )
    with pytest.raises(nct.InvalidInputError, match=r"sample 1"):
        sol.evaluate(torch.tensor([2.0, 2.5], dtype=F64))


# --- save times interpolated in windows of steps -----------------------------------------


def _windowed_solve(window: int, monkeypatch, weight: torch.Tensor):
    """A solve of y' = -w y + sin t over per-sample irregular grids, with save times
    interpolated every `window` steps; returns the saves and d(loss)/d(w)."""
    import neuralct._loop.saves as loop

    monkeypatch.setattr(loop, "SAVE_WINDOW", window)
    generator = torch.Generator().manual_seed(3)
    times = torch.sort(torch.rand(3, 40, generator=generator, dtype=F64) * 12, dim=1).values
    times[1] = times[1].flip(0)  # one sample runs backward in time
    w = weight.clone().requires_grad_(True)
    sol = nct.solve(
        nct.ODETerm(lambda t, y, args: -args * y + torch.sin(t)[:, None]),
        torch.ones(3, 2, dtype=F64),
        times,
        args=w,
        controller=nct.PIDController(rtol=1e-7, atol=1e-9),
    )
    (gradient,) = torch.autograd.grad(sol.ys.square().sum(), w)
    return sol, gradient


def test_save_times_interpolated_in_windows_match_one_window(monkeypatch):
    weight = torch.tensor(0.7, dtype=F64)
    reference, reference_grad = _windowed_solve(10_000, monkeypatch, weight)
    assert int(reference.stats.steps.max()) > 20
    assert torch.equal(reference.ys[:, -1], reference.y_final)  # the last save is the last step's value
    for window in (1, 2, 7):
        sol, grad = _windowed_solve(window, monkeypatch, weight)
        torch.testing.assert_close(sol.ys, reference.ys, rtol=0, atol=0)
        torch.testing.assert_close(grad, reference_grad, rtol=1e-12, atol=0)
        assert bool(torch.isfinite(grad))


@pytest.mark.parametrize("solver", [nct.Tsit5(), nct.Bosh3()], ids=["Tsit5-quartic", "Bosh3-hermite"])
def test_save_times_in_between_change_neither_the_steps_nor_the_end_value(solver):
    """Interpolated save times do not steer the steps: a solve that saves only its end time (the
    state it stands on, no interpolation) and one that also saves four times in between take the
    same steps and end on the same value and gradient, bit for bit (per-sample grids)."""
    weight = torch.tensor(0.7, dtype=F64, requires_grad=True)
    y0 = torch.tensor([[1.0], [0.5], [2.0]], dtype=F64)
    grids = torch.stack([torch.linspace(0.0, end, 6, dtype=F64) for end in (1.0, 2.5, 4.0)])
    term = nct.ODETerm(lambda t, y, args: -weight * y + torch.sin(t)[:, None])
    controller = nct.PIDController(rtol=1e-6, atol=1e-9)
    results = []
    for ts in (grids, grids[:, [0, -1]]):
        sol = nct.solve(term, y0, ts, solver=solver, controller=controller)
        (gradient,) = torch.autograd.grad(sol.ys[:, -1].sum(), weight)
        results.append((sol, gradient))
    (every, every_grad), (ends, ends_grad) = results
    assert int(ends.stats.steps.min()) > 3
    assert torch.equal(every.stats.steps, ends.stats.steps)
    assert torch.equal(every.ys[:, -1], ends.ys[:, -1])
    assert torch.equal(ends.ys[:, -1], ends.y_final)
    assert torch.equal(every_grad, ends_grad)


@pytest.mark.parametrize("state", [(3,), (2, 3)])
def test_coefficients_kept_as_stages_equal_the_tableau_polynomial_formed_step_by_step(state):
    """`stack_coefficients` over `StageCoefficients` gives h * D @ k for every step and sample,
    along either new dimension, and one step's `materialize` agrees."""
    from neuralct.paths.dense import StageCoefficients, stack_coefficients

    gen = torch.Generator().manual_seed(0)
    batch, stages, powers, steps = 4, 7, 4, 5
    matrix = torch.randn(powers, stages, generator=gen, dtype=F64)
    parts, expected = [], []
    for _ in range(steps):
        ks = tuple(torch.randn(batch, *state, generator=gen, dtype=F64) for _ in range(stages))
        h = torch.randn(batch, generator=gen, dtype=F64)
        hs = h.reshape(batch, *(1,) * len(state))
        parts.append(StageCoefficients(ks, hs, matrix))
        direct = torch.einsum("ps,sb...->bp...", matrix, torch.stack(ks)) * hs.unsqueeze(1)
        expected.append(direct)
        assert torch.allclose(parts[-1].materialize(), direct, rtol=1e-14, atol=1e-14)
    assert torch.allclose(stack_coefficients(parts, dim=0), torch.stack(expected), rtol=1e-14, atol=1e-14)
    assert torch.allclose(stack_coefficients(parts, dim=1), torch.stack(expected, dim=1), rtol=1e-14, atol=1e-14)
