"""The step loop reads device values at most once per 16 steps.

On a GPU every read of a device value (`bool(t)`, `t.item()`, `t.tolist()`, `t.cpu()`, `int(t)`,
...) waits for every queued kernel, so a loop that reads once per step leaves the device idle
between steps. These tests count such reads over a whole `solve` of about 1000 steps, input
checks included, by wrapping the `Tensor` methods that make them.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

import neuralct as nct
import neuralct._loop.look as look_module
import neuralct.paths.brownian_grid as grid_module

F64 = torch.float64
READS = ("__bool__", "item", "tolist", "cpu", "__int__", "__float__", "__index__", "numpy")


@contextlib.contextmanager
def counting_reads():
    """Count calls to the `Tensor` methods that read device values; yields a one-entry list."""
    count = [0]
    originals = {name: getattr(torch.Tensor, name) for name in READS}

    def counted(original):
        def wrapper(self, *args, **kwargs):
            count[0] += 1
            return original(self, *args, **kwargs)

        return wrapper

    try:
        for name, original in originals.items():
            setattr(torch.Tensor, name, counted(original))
        yield count
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def _decay(t, y, args):
    return -args * y + torch.sin(t)[:, None]


def _solve(controller, solver, steps_hint: float, saves: int = 2):
    """A batch of 4 samples with their own rates, over [0, 10] with `saves` save times."""
    rates = torch.tensor([[0.5], [1.0], [2.0], [3.0]], dtype=F64)
    t = torch.linspace(0, steps_hint, saves, dtype=F64)
    return nct.solve(
        nct.ODETerm(_decay), torch.ones(4, 3, dtype=F64), t, solver=solver, controller=controller, args=rates
    )


CASES = {
    "adaptive": (nct.PIDController(rtol=1e-10, atol=1e-10), nct.Tsit5(), 32.0),
    "fixed": (nct.ConstantStep(0.01), nct.RK4(), 10.0),
}


@pytest.mark.parametrize("saves", [2, 50])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_solve_reads_the_device_at_most_once_per_16_steps(case, saves):
    controller, solver, end = CASES[case]
    with counting_reads() as reads:
        sol = _solve(controller, solver, end, saves)
    steps = int(sol.stats.steps.max())
    assert 800 <= steps <= 1500, steps
    assert bool(sol.succeeded.all())
    assert reads[0] <= steps / 16, (reads[0], steps)


def test_the_counter_sees_a_loop_that_reads_every_step(monkeypatch):
    """The count is not vacuous: a loop that looked at every iteration would fail the bound."""
    monkeypatch.setattr(look_module, "CHECK_EVERY", 1)
    controller, solver, end = CASES["fixed"]
    with counting_reads() as reads:
        sol = _solve(controller, solver, end)
    assert reads[0] > int(sol.stats.steps.max())


@pytest.mark.parametrize("max_steps", [37, 100])
def test_max_steps_stops_a_sample_at_exactly_max_steps(max_steps):
    """Looks every few iterations do not let a sample step past `max_steps`."""
    controller, solver, end = CASES["fixed"]
    rates = torch.tensor([[0.5], [1.0]], dtype=F64)
    t = torch.stack([torch.linspace(0, 0.2, 3, dtype=F64), torch.linspace(0, end, 3, dtype=F64)])
    sol = nct.solve(
        nct.ODETerm(_decay),
        torch.ones(2, 3, dtype=F64),
        t,
        solver=solver,
        controller=controller,
        args=rates,
        max_steps=max_steps,
        throw=False,
    )
    assert sol.status.tolist() == [int(nct.Status.SUCCESS), int(nct.Status.MAX_STEPS)]
    assert sol.stats.steps.tolist() == [20, max_steps]


def _sde_on_grid(steps: int = 1000):
    """Euler-Maruyama over `steps` steps of a `ConstantStep` onto the grid of a `BrownianGrid`,
    for 4 samples with their own rates, saved at 5 times."""
    grid = torch.linspace(0, 1, steps + 1, dtype=F64)
    path = nct.BrownianGrid(grid, shape=(4, 3), seed=0)
    rates = torch.tensor([[0.5], [1.0], [2.0], [3.0]], dtype=F64)
    noise = nct.NoiseTerm(lambda t, y, args: 0.3 * torch.cos(y), path, nct.NoiseType.DIAGONAL)
    term = nct.SDETerm(nct.ODETerm(_decay), noise)
    t = torch.linspace(0, 1, 5, dtype=F64)
    return nct.solve(
        term,
        torch.ones(4, 3, dtype=F64),
        t,
        solver=nct.EulerMaruyama(),
        controller=nct.ConstantStep(1 / steps),
        args=rates,
    )


def test_a_fixed_step_sde_solve_on_a_brownian_grid_reads_the_device_at_most_once_per_16_steps():
    """The grid's check that each step's times lie on it is read with the loop's looks."""
    with counting_reads() as reads:
        sol = _sde_on_grid()
    steps = int(sol.stats.steps.max())
    assert steps == 1000 and bool(sol.succeeded.all())
    assert reads[0] <= steps / 16, (reads[0], steps)


def test_the_counter_sees_a_brownian_grid_that_checks_every_query(monkeypatch):
    """The count is not vacuous: a grid that read its check at each query would fail the bound."""
    monkeypatch.setattr(grid_module, "current_checks", lambda: None)
    with counting_reads() as reads:
        sol = _sde_on_grid()
    assert reads[0] > int(sol.stats.steps.max())
