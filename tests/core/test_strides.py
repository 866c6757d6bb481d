"""Strides (`neuralct/_loop/strides.py`): fixed steps back to back give bit for bit the solve of
the general loop, iteration by iteration: states, outputs, statuses, statistics and gradients.

Each case runs twice, with strides and with them turned off, and compares with `torch.equal`.
A spy checks that the strided run did take strides (so no case passes vacuously), and the
cases where a stride cannot hold (a state that blows up, a boundary a stride would overrun)
check that the stride was discarded and its iterations run again.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

import neuralct as nct
import neuralct._loop.look as look_module
import neuralct._loop.loop as loop_module
import neuralct._loop.strides as strides_module

F64 = torch.float64


@contextlib.contextmanager
def strides_counted(monkeypatch, enabled: bool = True):
    """Strides on (counted: yields `[strides taken, strides discarded]`) or off."""
    counts = [0, 0]
    original_stride, original_look = strides_module.stride, look_module.look

    def counted_stride(*args, **kwargs):
        counts[0] += 1
        return original_stride(*args, **kwargs)

    def counted_look(problem, state, trial=None):
        state, seen = original_look(problem, state, trial)
        counts[1] += not seen.held
        return state, seen

    with monkeypatch.context() as patch:
        patch.setattr(loop_module, "stride", counted_stride)
        patch.setattr(loop_module, "look", counted_look)
        if not enabled:
            patch.setattr(loop_module, "strides_apply", lambda problem: False)
            patch.setattr(look_module, "strides_apply", lambda problem: False)
        yield counts


def assert_same_solution(strided: nct.Solution, plain: nct.Solution) -> None:
    """Equal outputs, final states, statuses and statistics, bit for bit."""
    assert torch.equal(strided.ts, plain.ts)
    # Outputs a sample that failed did not reach are NaN in both.
    torch.testing.assert_close(strided.ys, plain.ys, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(strided.y_final, plain.y_final, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(strided.t_final, plain.t_final)
    assert torch.equal(strided.status, plain.status)
    for name in ("vf_evals", "steps", "accepted", "rejected"):
        assert torch.equal(getattr(strided.stats, name), getattr(plain.stats, name)), name


def both(monkeypatch, run):
    """`run()` with strides (returning its result and `[taken, discarded]`) and without."""
    with strides_counted(monkeypatch) as counts:
        strided = run()
    with strides_counted(monkeypatch, enabled=False) as off:
        plain = run()
    assert off == [0, 0]
    return strided, plain, counts


def decay(t, y, args):
    return -args * y + torch.sin(3 * t)[:, None]


RATES = torch.tensor([[0.5], [1.0], [2.0], [3.0]], dtype=F64)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize(
    "solver", [nct.RK4(), nct.Tsit5(), nct.Euler(), nct.ImplicitEuler()], ids=lambda s: type(s).__name__
)
def test_fixed_steps_with_per_sample_spans_and_saves_match_the_general_loop(monkeypatch, solver, dtype):
    """Per-sample spans and save grids (one backward in time, one ragged), so samples finish at
    different iterations and strides run with done samples held still."""
    ts = torch.stack(
        [
            torch.linspace(0.0, 3.0, 7),
            torch.linspace(0.5, 2.0, 7),
            torch.linspace(2.0, -1.0, 7),
            torch.cat([torch.linspace(0.0, 1.3, 4), torch.tensor([5.0, 6.0, 7.0])]),  # past `lengths`: unused
        ]
    ).to(dtype)
    lengths = torch.tensor([7, 7, 7, 4])
    y0 = torch.ones(4, 3, dtype=dtype)

    def run():
        return nct.solve(
            nct.ODETerm(decay),
            y0,
            ts,
            solver=solver,
            controller=nct.ConstantStep(0.01),
            args=RATES.to(dtype),
            lengths=lengths,
        )

    strided, plain, (taken, discarded) = both(monkeypatch, run)
    assert_same_solution(strided, plain)
    assert bool(plain.succeeded.all())
    assert taken >= 5 and discarded == 0


def test_gradients_through_strides_match_the_general_loop(monkeypatch):
    rates = RATES.clone().requires_grad_()
    y0 = torch.linspace(0.5, 1.5, 12, dtype=F64).reshape(4, 3).requires_grad_()
    ts = torch.linspace(0.0, 2.0, 3, dtype=F64)

    def run():
        solution = nct.solve(
            nct.ODETerm(decay), y0, ts, solver=nct.RK4(), controller=nct.ConstantStep(0.01), args=rates
        )
        return solution, torch.autograd.grad(solution.ys.square().sum(), [y0, rates])

    (strided, strided_grads), (plain, plain_grads), (taken, _) = both(monkeypatch, run)
    assert_same_solution(strided, plain)
    assert all(torch.equal(a, b) for a, b in zip(strided_grads, plain_grads))
    assert taken >= 5


def sde_solve(steps: int, saves: int, diffusion=None, y0: torch.Tensor | None = None):
    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=F64)
    path = nct.BrownianGrid(grid, (4, 3), seed=3)
    diffusion = diffusion or (lambda t, y, args: 0.3 * torch.cos(y))
    term = nct.SDETerm(nct.ODETerm(decay), nct.NoiseTerm(diffusion, path, nct.NoiseType.DIAGONAL))
    ts = torch.linspace(0.0, 1.0, saves, dtype=F64)
    return nct.solve(
        term,
        torch.ones(4, 3, dtype=F64) if y0 is None else y0,
        ts,
        solver=nct.EulerMaruyama(),
        controller=nct.ConstantStep(1.0 / steps),
        args=RATES,
        throw=False,
    )


@pytest.mark.parametrize("saves", [2, 5])
def test_an_sde_on_a_brownian_grid_matches_the_general_loop(monkeypatch, saves):
    strided, plain, (taken, discarded) = both(monkeypatch, lambda: sde_solve(400, saves))
    assert_same_solution(strided, plain)
    assert taken >= 10 and discarded == 0


def test_a_stride_in_which_a_sample_blows_up_is_run_again_step_by_step(monkeypatch):
    """Sample 2's diffusion turns infinite at t >= 0.5: the stride over that time does not hold,
    and the sample fails NONFINITE at the step where it would have, its state its last finite one
    (its output at the end, not reached, is NaN). Later strides hold it still there, where its
    field is infinite, and its gradient stays the general loop's (finite)."""

    def blowing_up(t, y, args):
        bad = (t >= 0.5) & (torch.arange(4) == 2)
        return torch.where(bad[:, None], torch.inf, 0.3 * torch.cos(y))

    def run():
        y0 = torch.ones(4, 3, dtype=F64, requires_grad=True)
        solution = sde_solve(400, 2, blowing_up, y0)
        return solution, torch.autograd.grad(solution.y_final.square().sum(), y0)[0]

    (strided, strided_grad), (plain, plain_grad), (taken, discarded) = both(monkeypatch, run)
    assert_same_solution(strided, plain)
    assert torch.equal(strided_grad, plain_grad) and bool(torch.isfinite(plain_grad).all())
    assert plain.status.tolist() == [0, 0, int(nct.Status.NONFINITE), 0]
    assert bool(torch.isfinite(plain.y_final).all()) and float(plain.t_final[2]) == pytest.approx(0.5)
    assert discarded >= 1 and taken > discarded


def test_a_stride_that_would_overrun_a_boundary_is_run_again_step_by_step(monkeypatch):
    """With `clear_steps` made to promise too much, strides run into save times: each is caught
    by the look after it and run again, and the solve is still the general loop's."""
    monkeypatch.setattr(look_module, "clear_steps", lambda problem, state, running, most: torch.tensor(most))
    strided, plain, (taken, discarded) = both(monkeypatch, lambda: sde_solve(400, 9))
    assert_same_solution(strided, plain)
    assert discarded >= 5


def test_max_steps_ends_a_strided_solve_where_the_general_loop_does(monkeypatch):
    ts = torch.linspace(0.0, 10.0, 2, dtype=F64)

    def run():
        return nct.solve(
            nct.ODETerm(decay),
            torch.ones(4, 3, dtype=F64),
            ts,
            solver=nct.RK4(),
            controller=nct.ConstantStep(0.01),
            args=RATES,
            max_steps=300,
            throw=False,
        )

    strided, plain, (taken, _) = both(monkeypatch, run)
    assert_same_solution(strided, plain)
    assert plain.status.tolist() == [int(nct.Status.MAX_STEPS)] * 4
    assert plain.stats.steps.tolist() == [300] * 4
    assert taken >= 5


def test_a_delay_equation_with_its_growing_history_matches_the_general_loop(monkeypatch):
    def feedback(t, y, delayed, args):
        return -delayed[:, 0] + 0.1 * torch.sin(t)[:, None]

    history = torch.tensor([[1.0], [0.5], [-0.5]], dtype=F64)

    def run():
        term = nct.DelayTerm(feedback, [1.0], lambda t: history.expand(t.shape[0], 1).clone())
        ts = torch.linspace(0.0, 3.0, 4, dtype=F64)
        return nct.solve(term, history, ts, solver=nct.MethodOfSteps(nct.RK4()), controller=nct.ConstantStep(0.05))

    strided, plain, (taken, _) = both(monkeypatch, run)
    assert_same_solution(strided, plain)
    assert taken >= 1


def test_a_controlled_equation_with_jump_times_matches_the_general_loop(monkeypatch):
    """A linear path's knots are jump times: strides stop short of them."""
    torch.manual_seed(0)
    times = torch.linspace(0.0, 2.0, 5, dtype=F64)
    path = nct.LinearPath(torch.randn(4, 5, 2, dtype=F64), times)
    weight = torch.randn(3, 3, 2, dtype=F64) * 0.5
    term = nct.ControlTerm(lambda t, z, args: torch.tanh(torch.einsum("ijc,bj->bic", weight, z)), path)

    def run():
        return nct.solve(term, torch.ones(4, 3, dtype=F64), times, solver=nct.RK4(), controller=nct.ConstantStep(0.01))

    strided, plain, (taken, discarded) = both(monkeypatch, run)
    assert_same_solution(strided, plain)
    assert taken >= 4 and discarded == 0
