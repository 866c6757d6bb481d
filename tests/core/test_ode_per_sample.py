"""Per-sample semantics of the step loop.

A sample's result, step count and status never depend on its batch mates; samples may have
their own time grids (forward or backward); failures, `max_steps` and finishing are per
sample; rejected steps keep their time; and the loop terminates on the float pitfalls peers
have hit (float32 state with float64 time at large t, float32 time at large t, end times a
rounding error away from a step boundary).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import neuralct as nct

F64 = torch.float64


def van_der_pol(t, y, mu):
    """Van der Pol with a per-sample stiffness `mu` `[B]` passed as `args`."""
    x, v = y[:, 0], y[:, 1]
    return torch.stack([v, mu * (1 - x * x) * v - x], dim=1)


VDP = nct.ODETerm(van_der_pol)
MU = torch.tensor([0.5, 1.0, 5.0, 20.0], dtype=F64)
VDP_Y0 = torch.tensor([[2.0, 0.0], [1.0, 1.0], [2.0, 0.0], [0.5, -1.0]], dtype=F64)
TIGHT = dict(rtol=1e-12, atol=1e-12)


def assert_same_sample(batch_sol, b, alone, *, exact_counts=True):
    torch.testing.assert_close(batch_sol.ys[b], alone.ys[0], **TIGHT)
    torch.testing.assert_close(batch_sol.t_final[b], alone.t_final[0], **TIGHT)
    assert int(batch_sol.status[b]) == int(alone.status[0])
    if exact_counts:
        for name in ("vf_evals", "steps", "accepted", "rejected"):
            assert int(getattr(batch_sol.stats, name)[b]) == int(getattr(alone.stats, name)[0]), name


# --- batch-composition invariance ------------------------------------------------------------


@pytest.mark.parametrize(
    "solver", [nct.Tsit5(), nct.Dopri5(), nct.Dopri8(), nct.Bosh3()], ids=lambda s: type(s).__name__
)
def test_batch_composition_does_not_change_solution(solver):
    t = torch.linspace(0, 6, 7, dtype=F64)
    controller = nct.PIDController(rtol=1e-6, atol=1e-8)
    batch = nct.solve(VDP, VDP_Y0, t, solver=solver, controller=controller, args=MU)
    assert bool(batch.succeeded.all())
    for b in range(len(MU)):
        alone = nct.solve(VDP, VDP_Y0[b : b + 1], t, solver=solver, controller=controller, args=MU[b : b + 1])
        assert_same_sample(batch, b, alone)
    # and reordering the batch only reorders the results
    order = torch.tensor([3, 1, 0, 2])
    shuffled = nct.solve(VDP, VDP_Y0[order], t, solver=solver, controller=controller, args=MU[order])
    torch.testing.assert_close(shuffled.ys, batch.ys[order], **TIGHT)
    assert torch.equal(shuffled.stats.vf_evals, batch.stats.vf_evals[order])


def test_batch_composition_does_not_change_fixed_step_solutions():
    t = torch.tensor([0.0, 0.35, 1.0, 2.2], dtype=F64)
    batch = nct.solve(VDP, VDP_Y0, t, solver=nct.RK4(), controller=nct.ConstantStep(0.01), args=MU)
    for b in range(len(MU)):
        alone = nct.solve(
            VDP, VDP_Y0[b : b + 1], t, solver=nct.RK4(), controller=nct.ConstantStep(0.01), args=MU[b : b + 1]
        )
        assert_same_sample(batch, b, alone)


def test_a_stiff_batch_mate_does_not_slow_a_sample_down():
    t = torch.tensor([0.0, 3.0], dtype=F64)
    controller = nct.PIDController(rtol=1e-6, atol=1e-8)
    easy_alone = nct.solve(VDP, VDP_Y0[:1], t, controller=controller, args=MU[:1])
    with_stiff = nct.solve(VDP, VDP_Y0[[0, 3]], t, controller=controller, args=MU[[0, 3]])
    assert int(with_stiff.stats.steps[1]) > 2 * int(with_stiff.stats.steps[0])
    assert_same_sample(with_stiff, 0, easy_alone)


def test_per_sample_control_spends_fewer_evaluations_than_a_shared_step():
    t = torch.tensor([0.0, 6.0], dtype=F64)
    per_sample = nct.solve(VDP, VDP_Y0, t, controller=nct.PIDController(rtol=1e-6, atol=1e-8), args=MU)
    shared = nct.solve(VDP, VDP_Y0, t, controller=nct.PIDController(rtol=1e-6, atol=1e-8, per_sample=False), args=MU)
    assert bool(per_sample.succeeded.all()) and bool(shared.succeeded.all())
    assert int(per_sample.stats.vf_evals.sum()) < 0.75 * int(shared.stats.vf_evals.sum())
    # with a shared accept/reject decision the easy samples pay for the stiff one
    assert bool((shared.stats.vf_evals[:2] > per_sample.stats.vf_evals[:2]).all())
    torch.testing.assert_close(shared.ys, per_sample.ys, rtol=1e-4, atol=1e-5)


def test_joint_control_takes_one_step_size_for_the_whole_batch():
    t = torch.tensor([0.0, 0.5, 2.0], dtype=F64)
    controller = nct.PIDController(rtol=1e-6, atol=1e-8, per_sample=False)
    shared = nct.solve(VDP, VDP_Y0, t, controller=controller, args=MU, dense=True)
    for name in ("steps", "accepted", "rejected", "vf_evals"):
        counts = getattr(shared.stats, name)
        assert bool((counts == counts[0]).all()), f"{name} differs across samples: {counts.tolist()}"
    step_starts = shared.dense.t0
    torch.testing.assert_close(step_starts, step_starts[:1].expand_as(step_starts), rtol=0, atol=0)


# --- per-sample time grids -------------------------------------------------------------------


def forced_decay(t, y, args):
    """$y' = -y + \\sin t$: exact $y(t) = c e^{-t} + (\\sin t - \\cos t) / 2$."""
    return -y + torch.sin(t)[:, None]


def forced_decay_exact(t0: float, y0: float, t: torch.Tensor) -> torch.Tensor:
    c = (y0 - (math.sin(t0) - math.cos(t0)) / 2) * math.exp(t0)
    return c * torch.exp(-t) + (torch.sin(t) - torch.cos(t)) / 2


MIXED_GRIDS = torch.tensor(
    [
        [0.0, 0.5, 1.0, 2.0],
        [3.0, 2.5, 1.0, -0.5],  # backward in time
        [10.0, 10.1, 10.7, 13.0],
        [1.0, 0.9, 0.8, 0.7],  # backward, short
    ],
    dtype=F64,
)


@pytest.mark.parametrize(
    ("solver", "controller"),
    [
        (nct.Tsit5(), nct.PIDController(rtol=1e-8, atol=1e-10)),
        (nct.Dopri8(), nct.PIDController(rtol=1e-8, atol=1e-10)),
        (nct.RK4(), nct.ConstantStep(0.01)),
    ],
    ids=["Tsit5", "Dopri8", "RK4"],
)
def test_per_sample_time_grids_match_solving_each_row_alone(solver, controller):
    y0 = torch.tensor([[1.0], [-0.5], [2.0], [0.3]], dtype=F64)
    term = nct.ODETerm(forced_decay)
    batch = nct.solve(term, y0, MIXED_GRIDS, solver=solver, controller=controller)
    torch.testing.assert_close(batch.ts, MIXED_GRIDS)
    for b in range(4):
        alone = nct.solve(term, y0[b : b + 1], MIXED_GRIDS[b], solver=solver, controller=controller)
        assert_same_sample(batch, b, alone)
        exact = forced_decay_exact(float(MIXED_GRIDS[b, 0]), float(y0[b, 0]), MIXED_GRIDS[b])
        torch.testing.assert_close(batch.ys[b, :, 0], exact, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(batch.t_final, MIXED_GRIDS[:, -1], rtol=0, atol=0)


def test_backward_solve_retraces_the_forward_solve():
    # Van der Pol with mild mu is well conditioned both ways (with large mu the limit cycle
    # repels backward in time, so those samples are left out).
    t = torch.linspace(0, 5, 6, dtype=F64)
    controller = nct.PIDController(rtol=1e-10, atol=1e-12)
    forward = nct.solve(VDP, VDP_Y0[:2], t, args=MU[:2], controller=controller)
    backward = nct.solve(VDP, forward.ys[:, -1], t.flip(0), args=MU[:2], controller=controller)
    torch.testing.assert_close(backward.ys.flip(1), forward.ys, rtol=1e-7, atol=1e-7)


# --- what the loop does with each step -------------------------------------------------------


class RecordingTsit5(nct.Tsit5):
    """Tsit5 that records `(t0, h, y0)` of every attempted step (for the whole batch)."""

    def __init__(self):
        object.__setattr__(self, "calls", [])

    def step(self, term, t0, y0, h, carry, args, dense):
        self.calls.append((t0.clone(), h.clone(), y0.clone()))
        return super().step(term, t0, y0, h, carry, args, dense)


def test_rejected_steps_keep_their_time_and_state():
    solver = RecordingTsit5()
    t = torch.tensor([0.0, 6.0], dtype=F64)
    sol = nct.solve(VDP, VDP_Y0, t, solver=solver, controller=nct.PIDController(rtol=1e-7, atol=1e-9), args=MU)
    assert int(sol.stats.rejected.sum()) > 10
    for b in range(len(MU)):
        attempts = [(float(t0[b]), float(h[b]), y0[b]) for t0, h, y0 in solver.calls[: int(sol.stats.steps[b])]]
        rejected = 0
        for (t_a, h_a, y_a), (t_b, h_b, y_b) in zip(attempts, attempts[1:]):
            if t_b == t_a:  # a rejected step: same time, same state, a smaller retry
                rejected += 1
                assert torch.equal(y_b, y_a) and 0 < h_b < h_a
            else:  # an accepted step: the next one starts where it ended
                assert t_b == pytest.approx(t_a + h_a, rel=1e-15, abs=1e-15) and t_b > t_a
        # the last attempt is the accepted step that reached the end
        assert rejected == int(sol.stats.rejected[b])
        assert attempts[-1][0] + attempts[-1][1] == pytest.approx(6.0, rel=1e-15)


def sqrt_decay(t, y, args):
    """$y' = -\\sqrt{y}$: $y = (\\sqrt{y_0} - t/2)^2$ reaches 0 at $t = 2\\sqrt{y_0}$; then NaN."""
    return -torch.sqrt(y)


def test_a_nan_in_a_trial_step_is_rejected_and_the_step_shrunk():
    # y0 = 1 reaches 0 at t = 2; a first step of 1.9 sends stages below 0 (NaN), which must be
    # rejected and retried smaller rather than accepted or propagated.
    t = torch.tensor([0.0, 1.5], dtype=F64)
    sol = nct.solve(
        nct.ODETerm(sqrt_decay),
        torch.ones(1, 1, dtype=F64),
        t,
        dt0=1.9,
        controller=nct.PIDController(rtol=1e-8, atol=1e-10),
    )
    assert int(sol.status[0]) == nct.Status.SUCCESS
    assert int(sol.stats.rejected[0]) >= 1
    torch.testing.assert_close(sol.ys[0, -1, 0], torch.tensor(0.0625, dtype=F64), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    ("solver", "controller"),
    [
        (nct.Tsit5(), nct.PIDController(rtol=1e-6, atol=1e-9)),
        (nct.Heun(), nct.PIDController(rtol=1e-3, atol=1e-6)),
        (nct.RK4(), nct.ConstantStep(0.1)),
    ],
    ids=["Tsit5", "Heun", "RK4"],
)
def test_a_sample_whose_field_turns_nan_fails_alone(solver, controller):
    # sample 1 hits y = 0 at t = 1 and its field is NaN beyond; its mates reach t = 3.
    y0 = torch.tensor([[4.0], [0.25], [9.0]], dtype=F64)
    t = torch.tensor([0.0, 1.5, 3.0], dtype=F64)
    term = nct.ODETerm(sqrt_decay)
    sol = nct.solve(term, y0, t, solver=solver, controller=controller, throw=False)
    assert int(sol.status[1]) in (nct.Status.NONFINITE, nct.Status.DT_UNDERFLOW)
    assert sol.status[[0, 2]].tolist() == [nct.Status.SUCCESS, nct.Status.SUCCESS]
    assert float(sol.t_final[1]) <= 1.0 + 1e-3
    assert bool(torch.isnan(sol.ys[1, 1:]).all())  # outputs it never reached are NaN
    assert bool(torch.isfinite(sol.y_final).all())
    for b in (0, 2):
        alone = nct.solve(term, y0[b : b + 1], t, solver=solver, controller=controller)
        assert_same_sample(sol, b, alone)
    with pytest.raises(nct.SolveFailed, match=r"sample 1: (NONFINITE|DT_UNDERFLOW)"):
        nct.solve(term, y0, t, solver=solver, controller=controller)


def test_max_steps_sets_max_steps_for_the_slow_sample_only():
    rates = torch.tensor([[1.0], [1.0], [300.0]], dtype=F64)
    term = nct.ODETerm(lambda t, y, args: -args * y + torch.cos(t)[:, None])
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    controller = nct.PIDController(rtol=1e-8, atol=1e-10)
    sol = nct.solve(term, torch.ones(3, 1, dtype=F64), t, args=rates, controller=controller, max_steps=40, throw=False)
    assert sol.status.tolist() == [nct.Status.SUCCESS, nct.Status.SUCCESS, nct.Status.MAX_STEPS]
    assert int(sol.stats.steps[2]) == 40 and int(sol.stats.steps[0]) < 40
    assert float(sol.t_final[2]) < 1.0
    alone = nct.solve(term, torch.ones(1, 1, dtype=F64), t, args=rates[:1], controller=controller, max_steps=40)
    assert_same_sample(sol, 0, alone)


def test_dt_min_fails_only_the_sample_that_needs_smaller_steps():
    rates = torch.tensor([[1.0], [2000.0]], dtype=F64)
    term = nct.ODETerm(lambda t, y, args: -args * (y - torch.cos(t)[:, None]))
    t = torch.tensor([0.0, 2.0], dtype=F64)
    controller = nct.PIDController(rtol=1e-6, atol=1e-8, dt_min=1e-2)
    sol = nct.solve(term, torch.ones(2, 1, dtype=F64), t, args=rates, controller=controller, throw=False)
    assert sol.status.tolist() == [nct.Status.SUCCESS, nct.Status.DT_UNDERFLOW]


def test_finished_samples_freeze():
    grids = torch.tensor([[0.0, 0.1], [0.0, 10.0]], dtype=F64)
    y0 = torch.ones(2, 1, dtype=F64)
    term = nct.ODETerm(forced_decay)
    sol = nct.solve(term, y0, grids, controller=nct.PIDController(rtol=1e-8, atol=1e-10))
    short = nct.solve(term, y0[:1], grids[0], controller=nct.PIDController(rtol=1e-8, atol=1e-10))
    assert int(sol.stats.steps[1]) > 5 * int(sol.stats.steps[0])
    # the short sample's counters, time and state stopped when it finished
    assert_same_sample(sol, 0, short)
    assert float(sol.t_final[0]) == 0.1
    torch.testing.assert_close(sol.y_final[0], short.ys[0, -1], rtol=0, atol=0)


def test_a_sample_with_a_single_save_time_is_done_before_stepping():
    sol = nct.solve(nct.ODETerm(forced_decay), torch.ones(2, 1, dtype=F64), torch.tensor([0.5], dtype=F64))
    assert sol.ys.shape == (2, 1, 1) and bool(sol.succeeded.all())
    assert sol.stats.steps.tolist() == [0, 0]
    torch.testing.assert_close(sol.ys[:, 0], torch.ones(2, 1, dtype=F64))


# --- float pitfalls near the end of the interval ---------------------------------------------


def oscillator(t, y, args):
    return torch.stack([y[:, 1], -y[:, 0]], dim=1)


@pytest.mark.parametrize(
    "controller",
    [nct.PIDController(rtol=1e-6, atol=1e-8), nct.PIDController(rtol=1e-3, atol=1e-6), nct.ConstantStep(0.1)],
    ids=["pid-tight", "pid-loose", "constant"],
)
def test_float32_state_with_float64_times_at_large_t_completes(controller):
    y0 = torch.tensor([[1.0, 0.0], [0.3, -0.7]], dtype=torch.float32)
    t = torch.tensor([1e4, 1e4 + 2.5, 1e4 + 10.0], dtype=F64)
    sol = nct.solve(nct.ODETerm(oscillator), y0, t, controller=controller, max_steps=1000)
    assert bool(sol.succeeded.all()) and sol.ys.dtype == torch.float32
    assert float(sol.t_final[0]) == 1e4 + 10.0
    assert int(sol.stats.steps.max()) <= 200
    exact = torch.stack([torch.cos(torch.tensor(10.0)), -torch.sin(torch.tensor(10.0))])
    tol = 1e-2 if isinstance(controller, nct.PIDController) and controller.rtol > 1e-4 else 2e-4
    torch.testing.assert_close(sol.ys[0, -1], exact, rtol=0, atol=tol)


@pytest.mark.parametrize("t0", [600.0, 1e4, 1e5])
@pytest.mark.parametrize(
    "controller",
    [nct.PIDController(rtol=1e-3, atol=1e-6), nct.PIDController(rtol=1e-6, atol=1e-8), nct.ConstantStep(0.1)],
    ids=["pid-loose", "pid-tight", "constant"],
)
def test_float32_times_at_large_t_terminate_promptly(t0, controller):
    # In float32 the spacing of times near 1e5 is ~0.008: a step smaller than that leaves t
    # unchanged. The solve must either finish or report DT_UNDERFLOW, never spin until max_steps.
    y0 = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float32)
    t = torch.tensor([t0, t0 + 10.0], dtype=torch.float32)
    sol = nct.solve(nct.ODETerm(oscillator), y0, t, controller=controller, max_steps=2000, throw=False)
    assert set(sol.status.tolist()) <= {nct.Status.SUCCESS, nct.Status.DT_UNDERFLOW}
    assert int(sol.stats.steps.max()) < 500
    done = sol.succeeded
    assert bool((sol.t_final[done] == t[-1]).all())


@pytest.mark.parametrize("end", [1.0, 1.0 + 1e-12, 1.0 + 1e-15, 1.0 - 1e-15])
def test_end_time_a_hair_from_a_step_boundary_completes(end):
    t = torch.tensor([0.0, end], dtype=F64)
    y0 = torch.ones(1, 1, dtype=F64)
    term = nct.ODETerm(forced_decay)
    fixed = nct.solve(term, y0, t, solver=nct.RK4(), controller=nct.ConstantStep(0.1))
    assert float(fixed.t_final[0]) == end
    assert int(fixed.stats.steps[0]) in (10, 11)
    for solver in (nct.Tsit5(), nct.Dopri8()):
        adaptive = nct.solve(
            term, y0, t, solver=solver, controller=nct.PIDController(rtol=1e-8, atol=1e-10, dt_max=0.1)
        )
        assert float(adaptive.t_final[0]) == end
        torch.testing.assert_close(adaptive.ys[0, -1], fixed.ys[0, -1], rtol=1e-6, atol=1e-8)


def test_constant_steps_that_sum_to_the_span_up_to_rounding_take_no_sliver_step():
    # Ten steps of 0.1 reach 0.9999999999999999, not 1.0; the remaining 1e-16 is rounding, not
    # a step to take (it would cost a full step of evaluations).
    term = nct.ODETerm(forced_decay)
    y0 = torch.ones(1, 1, dtype=F64)
    for dt, span, steps in ((0.1, 1.0, 10), (0.01, 1.0, 100), (0.1, 3.0, 30), (0.3, 0.9, 3)):
        sol = nct.solve(
            term, y0, torch.tensor([0.0, span], dtype=F64), solver=nct.RK4(), controller=nct.ConstantStep(dt)
        )
        assert int(sol.stats.steps[0]) == steps, (dt, span)
        assert float(sol.t_final[0]) == span
    grid = torch.linspace(0, 1, 11, dtype=F64)
    sol = nct.solve(term, y0, grid, solver=nct.RK4(), controller=nct.ConstantStep(0.1))
    assert int(sol.stats.steps[0]) == 10


def test_a_rejected_first_step_on_a_span_of_many_decades_shrinks_instead_of_underflowing():
    # Save times 0, 1e-4, ..., 1e11 (Robertson-like). A step from 0 may be stretched onto 1e-4 by
    # rounding slack only, i.e. ulps of 1e-4, not of 1e11 (9e-5): else the first step is stretched
    # up to the save time, rejected, and its shrunk retry judged to be stretched onto it again,
    # which ended the sample with DT_UNDERFLOW at t = 0.
    term = nct.ODETerm(lambda t, y, args: -1e5 * (y - 1))
    times = torch.cat([torch.zeros(1, dtype=F64), torch.logspace(-4, 11, 16, dtype=F64)])
    for dt0 in (5e-5, 1e-4):
        sol = nct.solve(
            term,
            torch.zeros(1, 1, dtype=F64),
            times,
            solver=nct.Kvaerno5(),
            controller=nct.PIDController(rtol=1e-6, atol=1e-9),
            dt0=dt0,
            throw=False,
        )
        assert sol.status.tolist() == [nct.Status.SUCCESS], dt0
        assert int(sol.stats.rejected[0]) >= 1  # the case: a first step that is rejected
        torch.testing.assert_close(sol.ys[0, 1:, 0], 1 - torch.exp(-1e5 * times[1:]), rtol=1e-5, atol=1e-6)


def test_a_field_that_is_nan_at_the_start_fails_that_sample_without_spinning():
    # sqrt of a negative rate: the slope at t0 is NaN, so no step size can help; the sample
    # fails as NONFINITE before its first step, with or without a given first step.
    term = nct.ODETerm(lambda t, y, args: -torch.sqrt(args) * y)
    rates = torch.tensor([[1.0], [-1.0]], dtype=F64)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    for dt0 in (None, 0.1):
        sol = nct.solve(term, torch.ones(2, 1, dtype=F64), t, args=rates, dt0=dt0, throw=False)
        assert sol.status.tolist() == [nct.Status.SUCCESS, nct.Status.NONFINITE]
        assert sol.stats.steps.tolist()[1] == 0
        assert bool(torch.isnan(sol.ys[1, 1]).all()) and float(sol.t_final[1]) == 0.0
    fixed = nct.solve(
        term,
        torch.ones(2, 1, dtype=F64),
        t,
        args=rates,
        solver=nct.RK4(),
        controller=nct.ConstantStep(0.1),
        throw=False,
    )
    assert fixed.status.tolist() == [nct.Status.SUCCESS, nct.Status.NONFINITE]


def test_a_field_returning_the_wrong_shape_is_named():
    term = nct.ODETerm(lambda t, y, args: y.sum(dim=1))
    expected = r"ODETerm must return a tensor of shape \(2, 3\).*got Tensor of shape \(2,\)"
    with pytest.raises(nct.IncompatibleTermError, match=expected):
        nct.solve(term, torch.ones(2, 3), torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize(
    ("max_steps", "status"), [(9, nct.Status.MAX_STEPS), (10, nct.Status.SUCCESS), (11, nct.Status.SUCCESS)]
)
def test_max_steps_counts_the_step_that_reaches_the_end(max_steps, status):
    sol = nct.solve(
        nct.ODETerm(forced_decay),
        torch.ones(1, 1, dtype=F64),
        torch.tensor([0.0, 1.0], dtype=F64),
        solver=nct.RK4(),
        controller=nct.ConstantStep(0.1),
        max_steps=max_steps,
        throw=False,
    )
    assert int(sol.status[0]) == status
    assert int(sol.stats.steps[0]) == min(max_steps, 10)


def test_states_with_several_dimensions_are_per_sample_too():
    y0 = torch.randn(3, 2, 4, dtype=F64)
    rates = torch.tensor([0.5, 3.0, 40.0], dtype=F64)[:, None, None]
    term = nct.ODETerm(lambda t, y, args: -args * y + torch.cos(t)[:, None, None])
    t = torch.tensor([0.0, 1.0, 2.0], dtype=F64)
    controller = nct.PIDController(rtol=1e-7, atol=1e-9)
    batch = nct.solve(term, y0, t, args=rates, controller=controller)
    assert batch.ys.shape == (3, 3, 2, 4)
    for b in range(3):
        alone = nct.solve(term, y0[b : b + 1], t, args=rates[b : b + 1], controller=controller)
        assert_same_sample(batch, b, alone)


@settings(max_examples=15, deadline=None)
@given(
    rates=st.lists(st.floats(0.1, 50.0), min_size=2, max_size=5),
    starts=st.lists(st.floats(-3.0, 3.0), min_size=5, max_size=5),
    spans=st.lists(st.floats(-2.0, 2.0).filter(lambda x: abs(x) > 0.05), min_size=5, max_size=5),
    pick=st.integers(0, 4),
)
def test_any_sample_solves_the_same_alone_as_in_any_batch(rates, starts, spans, pick):
    batch = len(rates)
    pick = pick % batch
    rate = torch.tensor(rates, dtype=F64)[:, None]
    fractions = torch.tensor([0.0, 0.3, 1.0], dtype=F64)
    t = (
        torch.tensor(starts[:batch], dtype=F64)[:, None]
        + fractions[None] * torch.tensor(spans[:batch], dtype=F64)[:, None]
    )
    y0 = torch.linspace(-1.0, 1.0, batch, dtype=F64)[:, None]
    term = nct.ODETerm(lambda t, y, args: -args * (y - torch.sin(t)[:, None]))
    controller = nct.PIDController(rtol=1e-6, atol=1e-8)
    together = nct.solve(term, y0, t, args=rate, controller=controller)
    alone = nct.solve(term, y0[pick : pick + 1], t[pick], args=rate[pick : pick + 1], controller=controller)
    assert_same_sample(together, pick, alone)


@pytest.mark.parametrize("steps", [1000, 4000])
def test_n_constant_steps_in_float32_take_exactly_n_steps_and_land_on_the_multiples(steps):
    # Summing dt step by step drifts in float32 (1000 steps of 1e-3 end 1e-5 short of 1 and took a
    # sliver step); steps are counted from the last landing instead.
    grid = torch.linspace(0.0, 1.0, steps + 1)
    brownian = nct.BrownianGrid(grid, shape=(3, 1), seed=0)  # refuses any time off the grid
    sde = nct.SDETerm(nct.ODETerm(lambda t, y, args: -y), nct.NoiseTerm(lambda t, y, args: 0.1 * y, brownian))
    sol = nct.solve(
        sde, torch.ones(3, 1), grid[[0, -1]], solver=nct.EulerMaruyama(), controller=nct.ConstantStep(1 / steps)
    )
    assert sol.stats.steps.tolist() == [steps] * 3
    ode = nct.solve(
        nct.ODETerm(lambda t, y, args: -y),
        torch.ones(3, 1),
        grid[[0, -1]],
        solver=nct.Euler(),
        controller=nct.ConstantStep(1 / steps),
        dt0=0.5 / steps,
    )
    assert ode.stats.steps.tolist() == [steps + 1] * 3  # one half step, then whole ones: the last is clipped


@pytest.mark.parametrize("t0", [100.0, -1000.0, 5.0e4])
def test_a_zero_state_in_float32_far_from_t0_takes_a_first_step_rounding_keeps(t0):
    # y = 0 and f = 0: the starting heuristic has no scale and used to fall back to 1e-6,
    # below float32's resolution beside |t| >= 32 (DT_UNDERFLOW, advising an implicit solver).
    weights = torch.randn(4, 4)
    term = nct.ODETerm(lambda t, y, args: torch.tanh(y @ weights))
    sol = nct.solve(term, torch.zeros(2, 4), torch.linspace(t0, t0 + 1.0, 5))
    assert sol.status.tolist() == [nct.Status.SUCCESS] * 2
    assert torch.equal(sol.ys, torch.zeros(2, 5, 4))
    # The zero field lets the step grow tenfold per step from its start: a first step of
    # 1e-6 of the span (or a hundred ulps of t0, whichever is larger) needs at most 9 steps.
    assert int(sol.stats.steps.max()) <= 9


def test_the_fallback_first_step_scales_with_the_span():
    # The same zero problem over spans 1e-3 and 1e3 takes the same steps (scale-free).
    term = nct.ODETerm(lambda t, y, args: torch.zeros_like(y))
    steps = [
        nct.solve(term, torch.zeros(1, 2, dtype=F64), torch.tensor([0.0, span], dtype=F64)).stats.steps.item()
        for span in (1e-3, 1.0, 1e3)
    ]
    assert steps[0] == steps[1] == steps[2]


def test_a_step_lost_to_time_rounding_fails_as_dt_underflow_with_advice_about_resolution():
    # float32 times near 1e4 over a span of ten ulps: the stiff decay needs steps below the
    # resolution. Each rejected step was stretched back onto the end time, forever (MAX_STEPS);
    # it must fail at once, and the advice must point at the times, not at stiffness.
    term = nct.ODETerm(lambda t, y, args: -1e3 * y)
    t = torch.tensor([1e4, 1e4 + 0.01])
    sol = nct.solve(term, torch.ones(1, 1), t, throw=False)
    assert sol.status.tolist() == [nct.Status.DT_UNDERFLOW]
    assert int(sol.stats.steps) < 20
    with pytest.raises(nct.SolveFailed) as info:
        nct.solve(term, torch.ones(1, 1), t)
    message = str(info.value)
    assert "by rounding, not by stiffness" in message and "float64" in message
    assert "implicit solver" not in message
    # The same decay in float64 times is solved, and a stiff blow-up still gets the stiffness advice.
    assert nct.solve(term, torch.ones(1, 1), t.double()).status.tolist() == [nct.Status.SUCCESS]
    blow_up = nct.ODETerm(lambda t, y, args: y**2)
    with pytest.raises(nct.SolveFailed, match="implicit solver") as info:
        nct.solve(blow_up, torch.ones(1, 1, dtype=F64), torch.tensor([0.0, 2.0], dtype=F64))
    assert "rounding" not in str(info.value)


def test_a_first_step_dt0_under_a_fixed_step_is_followed_by_steps_of_dt_counted_from_its_end():
    # Euler on y' = t sums t_k h_k exactly: the steps are 0.1 (dt0), then 0.25 from t = 0.1, then what is left.
    sol = nct.solve(
        nct.ODETerm(lambda t, y, args: t[:, None].expand_as(y)),
        torch.zeros(2, 1, dtype=F64),
        torch.tensor([0.0, 1.0], dtype=F64),
        solver=nct.Euler(),
        controller=nct.ConstantStep(0.25),
        dt0=0.1,
    )
    starts = torch.tensor([0.0, 0.1, 0.35, 0.6, 0.85], dtype=F64)
    sizes = torch.tensor([0.1, 0.25, 0.25, 0.25, 0.15], dtype=F64)
    assert sol.stats.steps.tolist() == [5, 5]
    torch.testing.assert_close(sol.ys[:, -1, 0], (starts * sizes).sum().expand(2), rtol=1e-14, atol=1e-15)
