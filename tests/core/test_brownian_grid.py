"""BrownianGrid: the right increments, the same path on sub-grids, EM convergence, clear errors."""

from __future__ import annotations

import contextlib
import gc
import math

import pytest
import torch

import neuralct as nct
import neuralct._loop.checks as checks_module
import neuralct.paths.brownian_grid as grid_module

F64 = torch.float64


def test_increments_over_grid_cells_are_independent_normals_with_variance_dt():
    grid = torch.tensor([0.0, 0.1, 0.4, 1.0], dtype=F64)
    path = nct.BrownianGrid(grid, shape=(40_000, 1), seed=0)
    cells = torch.stack([path.increment(grid[k], grid[k + 1]) for k in range(3)])  # [3, B, 1]
    for k, dt in enumerate(grid.diff().tolist()):
        assert abs(float(cells[k].mean())) < 4 * math.sqrt(dt / 40_000)
        assert float(cells[k].var()) == pytest.approx(dt, rel=0.05)
    correlation = torch.corrcoef(cells.squeeze(-1))
    assert float((correlation - torch.eye(3, dtype=F64)).abs().max()) < 0.03


def test_increments_add_up_and_reverse_and_reproduce_with_the_seed():
    grid = torch.linspace(0.0, 2.0, 21, dtype=F64)
    path = nct.BrownianGrid(grid, shape=(3, 2), seed=7)
    whole = path.increment(0.2, 1.6)
    parts = path.increment(0.2, 0.9) + path.increment(0.9, 1.6)
    torch.testing.assert_close(whole, parts, rtol=0, atol=1e-14)
    torch.testing.assert_close(path.increment(1.6, 0.2), -whole)
    torch.testing.assert_close(path.evaluate(1.6) - path.evaluate(0.2), whole)
    again = nct.BrownianGrid(grid, shape=(3, 2), seed=7)
    torch.testing.assert_close(again.increment(0.2, 1.6), whole, rtol=0, atol=0)
    assert not torch.equal(nct.BrownianGrid(grid, shape=(3, 2), seed=8).increment(0.2, 1.6), whole)


def test_euler_maruyama_on_the_grid_equals_a_hand_written_loop_with_the_same_increments_per_sample_grids():
    grids = torch.stack([torch.linspace(0.0, 1.0, 11, dtype=F64), torch.linspace(0.5, 2.5, 11, dtype=F64)])
    path = nct.BrownianGrid(grids, shape=(2, 3), seed=1)
    drift = lambda t, y, args: torch.sin(y) - 0.5 * y
    sigma = lambda t, y, args: 0.3 * torch.cos(y) + 0.1
    term = nct.SDETerm(nct.ODETerm(drift), nct.NoiseTerm(sigma, path))
    y0 = torch.tensor([[0.1, -0.2, 0.3], [1.0, 0.0, -1.0]], dtype=F64)
    sol = nct.solve(term, y0, grids, solver=nct.EulerMaruyama(), controller=nct.KnotToKnot())
    y = y0
    for k in range(10):
        t, dt = grids[:, k], grids[:, k + 1] - grids[:, k]
        dw = path.values[:, k + 1] - path.values[:, k]
        y = y + drift(t, y, None) * dt[:, None] + sigma(t, y, None) * dw
    torch.testing.assert_close(sol.ys[:, -1], y, rtol=1e-12, atol=1e-12)


def test_euler_maruyama_converges_at_strong_order_one_half_on_sub_grids_of_one_path():
    # Geometric Brownian motion X = exp((mu - sigma^2 / 2) t + sigma W): every step size solves the
    # same path, read on every m-th point of the finest grid.
    mu, sigma, batch = 0.5, 0.8, 2000
    grid = torch.linspace(0.0, 1.0, 257, dtype=F64)
    path = nct.BrownianGrid(grid, shape=(batch, 1), seed=3)
    term = nct.SDETerm(nct.ODETerm(lambda t, y, args: mu * y), nct.NoiseTerm(lambda t, y, args: sigma * y, path))
    exact = torch.exp((mu - sigma**2 / 2) + sigma * path.evaluate(1.0))
    dts, errors = [], []
    for m in (4, 8, 16, 32, 64):
        dt = 1.0 / (256 // m)
        end = nct.solve(
            term,
            torch.ones(batch, 1, dtype=F64),
            grid[[0, -1]],
            solver=nct.EulerMaruyama(),
            controller=nct.ConstantStep(dt),
        ).ys[:, -1]
        dts.append(dt)
        errors.append(float((end - exact).abs().mean()))
    x, y = torch.tensor(dts).log(), torch.tensor(errors).log()
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    assert abs(slope - nct.EulerMaruyama.order) < 0.3, (slope, errors)


def test_a_query_off_the_grid_is_refused_naming_the_time_and_the_nearest_grid_time():
    path = nct.BrownianGrid(torch.linspace(0.0, 1.0, 11, dtype=F64), shape=(2, 1), seed=0)
    with pytest.raises(nct.InvalidInputError, match=r"`tb` must be a time of the BrownianGrid's grid.*nearest grid"):
        path.increment(0.0, 0.15)
    for outside, nearest in ((-0.1, "0"), (1.5, "1"), (float("nan"), "1")):
        message = rf"asks tb\[0\] = {outside:.9g}, nearest grid time {nearest}\."
        with pytest.raises(nct.InvalidInputError, match=message):
            path.increment(0.0, outside)
    assert torch.equal(path.increment(0.0, 1.0 + 1e-15), path.values[:, -1])  # rounding stays on the grid
    sde = nct.SDETerm(nct.ODETerm(lambda t, y, args: -y), nct.NoiseTerm(lambda t, y, args: y, path))
    with pytest.raises(nct.InvalidInputError, match="BrownianGrid"):
        nct.solve(
            sde,
            torch.ones(2, 1, dtype=F64),
            torch.tensor([0.0, 1.0], dtype=F64),
            solver=nct.EulerMaruyama(),
            controller=nct.ConstantStep(0.03),
        )


def _sde(path, dt, end=1.0, **options):
    """Euler-Maruyama on `path` (`(B, 1)` noise) from 0 to `end` with `ConstantStep(dt)`: the
    solution, with `y` of shape `[B, 1]` and a drift parameter that requires grad."""
    rate = torch.tensor(0.7, dtype=F64, requires_grad=True)
    drift = nct.ODETerm(lambda t, y, args: -rate * y + torch.sin(t)[:, None])
    sde = nct.SDETerm(drift, nct.NoiseTerm(lambda t, y, args: 0.5 * torch.cos(y), path))
    batch = path.shape[0]
    t = torch.tensor([0.0, 0.5, end], dtype=F64)
    y0 = torch.linspace(-1.0, 1.0, batch, dtype=F64)[:, None]
    return nct.solve(sde, y0, t, solver=nct.EulerMaruyama(), controller=nct.ConstantStep(dt), **options), rate


def test_a_solve_checking_its_grid_queries_later_gives_bit_for_bit_the_immediately_checked_result(monkeypatch):
    """The check of each step's times is read with the loop's reads; the results (and gradients)
    are those of the same solve checking every query at once."""
    path = nct.BrownianGrid(torch.linspace(0.0, 1.0, 401, dtype=F64), shape=(5, 1), seed=4)
    runs = []
    for immediate in (False, True):
        if immediate:
            monkeypatch.setattr(grid_module, "current_checks", lambda: None)
        sol, rate = _sde(path, 1 / 200)
        (gradient,) = torch.autograd.grad(sol.ys[:, -1].square().sum(), rate)
        runs.append((sol.ys, sol.stats.steps, gradient))
    (ys, steps, gradient), (ys_now, steps_now, gradient_now) = runs
    assert steps.tolist() == [200] * 5 and torch.equal(steps, steps_now)
    assert torch.equal(ys, ys_now) and torch.equal(gradient, gradient_now)


def test_a_solve_stepping_off_the_grid_is_refused_naming_the_sample_and_its_time():
    # Sample 0's grid has every step time of dt = 0.05, sample 1's only every other one.
    grids = torch.stack([torch.linspace(0.0, 1.0, 21, dtype=F64), torch.linspace(0.0, 2.0, 21, dtype=F64)])
    path = nct.BrownianGrid(grids, shape=(2, 1), seed=0)
    message = r"`tb` must be a time of the BrownianGrid's grid; sample 1 asks tb\[1\] = 0.05, nearest grid time 0.1\."
    with pytest.raises(nct.InvalidInputError, match=message):
        _sde(path, 0.05)
    # The solve's deferral ended with it: a query outside a solve is checked at once.
    with pytest.raises(nct.InvalidInputError, match=r"sample 0 asks tb\[0\] = 0.125"):
        path.increment(0.0, 0.125)


def test_a_query_off_the_grid_in_a_solves_last_step_is_refused_too():
    """The 101st step leaves the grid and is the last `max_steps` allows: no look follows it,
    the read that settles the solve finds it."""
    path = nct.BrownianGrid(torch.linspace(0.0, 1.0, 101, dtype=F64), shape=(2, 1), seed=0)
    with pytest.raises(nct.InvalidInputError, match=r"sample 0 asks tb\[0\] = 1.01, nearest grid time 1\."):
        _sde(path, 0.01, end=2.0, max_steps=101, throw=False)
    sol, _ = _sde(path, 0.01, end=2.0, max_steps=100, throw=False)  # 100 steps stay on the grid
    assert sol.status.tolist() == [int(nct.Status.MAX_STEPS)] * 2


def test_a_solves_deferred_checks_are_forgotten_with_it():
    path = nct.BrownianGrid(torch.linspace(0.0, 1.0, 11, dtype=F64), shape=(2, 1), seed=0)
    before = len(checks_module._CHECKS)
    for dt in (0.1, 0.03):
        with contextlib.suppress(nct.InvalidInputError):
            _sde(path, dt)
    gc.collect()
    assert len(checks_module._CHECKS) == before


@pytest.mark.parametrize(
    "ts, shape, seed, message",
    [
        (torch.tensor([0.0, 0.5, 0.5]), (2, 1), 0, "`ts` must be strictly increasing"),
        (torch.tensor([0.0, float("nan")]), (2, 1), 0, "`ts` must be finite"),
        (torch.tensor([0.0]), (2, 1), 0, "`ts` must have shape"),
        (torch.zeros(3, 4).cumsum(1), (2, 1), 0, "`ts` must have shape"),
        (torch.linspace(0, 1, 3), (2,), 0, "`shape` must be"),
        (torch.linspace(0, 1, 3), (2, 1), -1, "`seed` must be"),
        ([0.0, 1.0], (2, 1), 0, "`ts` must be a floating tensor"),
        (torch.linspace(0, 1, 2**20), (2, 1), 0, "`ts` is too fine for its dtype torch.float32"),
    ],
)
def test_bad_grids_shapes_and_seeds_are_refused_by_name(ts, shape, seed, message):
    with pytest.raises(nct.InvalidInputError, match=message):
        nct.BrownianGrid(ts, shape=shape, seed=seed)
