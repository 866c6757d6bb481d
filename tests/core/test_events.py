"""Events: `solve(..., event=Event(cond, terminal, direction))`.

Crossing times against closed forms (free fall: $t^* = \\sqrt{2h/g}$; decay $y' = -k y$ down to
$c$: $t^* = \\ln(y_0/c)/k$; the oscillator $x = \\cos t$: zeros at $\\pi/2 + n\\pi$), with adaptive
and fixed steps; per-sample semantics; direction filtering and non-terminal recording; and the
gradient through the event time (implicit function theorem) against closed forms and against
finite differences (`gradcheck`) in float64.
"""

from __future__ import annotations

import math

import pytest
import torch

import neuralct as nct
from neuralct.events import Event
from neuralct.saveat import SaveAt

F64 = torch.float64
G = 9.81
ADAPTIVE = nct.PIDController(rtol=1e-10, atol=1e-12)


def free_fall(t, y, g):
    """$h'' = -g$ as the state (height, velocity)."""
    return torch.stack([y[:, 1], -g * torch.ones_like(y[:, 0])], dim=1)


def decay(t, y, k):
    return -k[:, None] * y


def oscillator(t, y, args):
    """$x'' = -x$: from (1, 0), $x = \\cos t$."""
    return torch.stack([y[:, 1], -y[:, 0]], dim=1)


def height(t, y, args):
    return y[:, 0]


FLOOR = Event(height, direction=-1)


def drop(heights: torch.Tensor, **options) -> nct.Solution:
    y0 = torch.stack([heights, torch.zeros_like(heights)], dim=1)
    return nct.solve(nct.ODETerm(free_fall), y0, torch.linspace(0.0, 2.0, 9, dtype=F64), args=G, **options)


@pytest.mark.parametrize(
    ("solver", "controller"),
    [
        (nct.Tsit5(), nct.PIDController(rtol=1e-6, atol=1e-9)),
        (nct.Dopri5(), nct.PIDController(rtol=1e-6, atol=1e-9)),
        (nct.Tsit5(), nct.ConstantStep(0.1)),
        (nct.RK4(), nct.ConstantStep(0.07)),
    ],
    ids=["Tsit5-adaptive", "Dopri5-adaptive", "Tsit5-fixed", "RK4-fixed"],
)
def test_a_falling_ball_stops_at_the_closed_form_impact_time(solver, controller):
    heights = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=F64)
    sol = drop(heights, solver=solver, controller=controller, event=FLOOR)
    impact = torch.sqrt(2 * heights / G)
    assert sol.status.tolist() == [int(nct.Status.EVENT)] * 4
    assert bool(sol.succeeded.all())
    # The step ends lie on no impact time (fixed steps of 0.1 or 0.07; adaptive ones are coarse
    # on a quadratic), so the root comes from the interpolant, not from a step end.
    torch.testing.assert_close(sol.event_t, impact, rtol=0, atol=1e-8)
    torch.testing.assert_close(sol.event_y[:, 1], -G * impact, rtol=0, atol=1e-8)
    torch.testing.assert_close(sol.event_y[:, 0], torch.zeros_like(heights), rtol=0, atol=1e-8)
    torch.testing.assert_close(sol.t_final, sol.event_t, rtol=0, atol=0)
    torch.testing.assert_close(sol.y_final, sol.event_y, rtol=0, atol=0)
    assert torch.equal(sol.event_count, torch.ones(4, dtype=torch.long))


def test_the_crossing_of_a_curved_solution_is_its_closed_form_within_the_solve_error():
    # Decay to c: the state's global error (~1e-6 at RK4 with dt = 0.25, ~1e-11 adaptive) bounds
    # the time error, two-sided for the fixed step: an event placed at a step end would be
    # ~0.1 off, and the exact root of the exact solution is not reached by a fourth-order method.
    y0, k, c = torch.tensor([[2.0], [3.0]], dtype=F64), torch.tensor([1.0, 0.7], dtype=F64), 0.5
    event = Event(lambda t, y, args: y[:, 0] - c)
    exact = torch.log(y0[:, 0] / c) / k
    t = torch.tensor([0.0, 5.0], dtype=F64)
    fine = nct.solve(nct.ODETerm(decay), y0, t, args=k, controller=ADAPTIVE, event=event)
    assert float((fine.event_t - exact).abs().max()) < 1e-9
    coarse = nct.solve(
        nct.ODETerm(decay), y0, t, args=k, solver=nct.RK4(), controller=nct.ConstantStep(0.25), event=event
    )
    error = float((coarse.event_t - exact).abs().max())
    assert 1e-8 < error < 1e-4


def test_batch_mates_do_not_change_a_samples_event():
    heights = torch.tensor([1.0, 30.0, 0.2, 5.0], dtype=F64)  # 30 m does not reach the floor by t = 2
    options = dict(controller=nct.PIDController(rtol=1e-6, atol=1e-9), event=FLOOR)
    batch = drop(heights, **options)
    assert batch.status.tolist() == [int(nct.Status.EVENT), 0, int(nct.Status.EVENT), int(nct.Status.EVENT)]
    assert math.isnan(float(batch.event_t[1])) and bool(batch.event_y[1].isnan().all())
    for b in range(4):
        alone = drop(heights[b : b + 1], **options)
        assert torch.equal(batch.event_t[b : b + 1].nan_to_num(), alone.event_t.nan_to_num())
        assert torch.equal(batch.ys[b : b + 1], alone.ys)
        assert torch.equal(batch.mask[b : b + 1], alone.mask)
        for name in ("vf_evals", "steps", "accepted", "rejected"):
            assert torch.equal(getattr(batch.stats, name)[b : b + 1], getattr(alone.stats, name)), name


def test_outputs_past_a_terminal_event_hold_its_state_and_are_masked():
    sol = drop(torch.tensor([1.0, 30.0], dtype=F64), event=FLOOR, controller=nct.PIDController(rtol=1e-8, atol=1e-10))
    ts = sol.ts
    reached = ts <= sol.event_t.nan_to_num(torch.inf)[:, None]
    assert torch.equal(sol.mask, reached)
    assert sol.mask[0].tolist() == [True] * 2 + [False] * 7  # impact at 0.4515 with saves every 0.25
    assert torch.equal(sol.ys[0, 2:], sol.event_y[0].expand(7, 2))
    exact = 1.0 - G * ts[0, :2] ** 2 / 2
    torch.testing.assert_close(sol.ys[0, :2, 0], exact, rtol=0, atol=1e-9)
    assert bool(sol.mask[1].all())  # no impact: every output reached


def test_a_terminal_event_saves_fewer_steps_and_its_dense_output_ends_there():
    heights = torch.tensor([1.0], dtype=F64)
    free = drop(heights, controller=nct.ConstantStep(0.1))
    stopped = drop(heights, controller=nct.ConstantStep(0.1), event=FLOOR, dense=True)
    # Steps end at 0.1, 0.2, 0.25 (a save time), 0.35, 0.45 and 0.5, where t* = 0.4515 was passed.
    assert int(stopped.stats.accepted[0]) == 6 < int(free.stats.accepted[0])
    torch.testing.assert_close(stopped.evaluate(stopped.event_t), stopped.event_y, rtol=0, atol=1e-14)
    with pytest.raises(nct.InvalidInputError, match="outside"):
        stopped.evaluate(stopped.event_t + 0.01)


@pytest.mark.parametrize(("direction", "first"), [(-1, 0.5), (1, 1.5), (0, 0.5)])
def test_direction_selects_falling_or_rising_crossings(direction, first):
    y0 = torch.tensor([[1.0, 0.0]], dtype=F64)
    t = torch.tensor([0.0, 6.0], dtype=F64)
    sol = nct.solve(nct.ODETerm(oscillator), y0, t, controller=ADAPTIVE, event=Event(height, direction=direction))
    torch.testing.assert_close(sol.event_t, torch.tensor([first * math.pi], dtype=F64), rtol=0, atol=1e-9)


def test_a_non_terminal_event_records_crossings_and_leaves_the_solve_unchanged():
    y0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64)  # cos t and sin t
    t = torch.linspace(0.0, 10.0, 6, dtype=F64)
    plain = nct.solve(nct.ODETerm(oscillator), y0, t, controller=ADAPTIVE)
    sol = nct.solve(nct.ODETerm(oscillator), y0, t, controller=ADAPTIVE, event=Event(height, terminal=False))
    assert torch.equal(sol.ys, plain.ys) and torch.equal(sol.stats.vf_evals, plain.stats.vf_evals)
    assert sol.status.tolist() == [0, 0] and bool(sol.mask.all())
    assert sol.event_count.tolist() == [3, 3]  # zeros of cos: pi/2 + n pi; of sin: n pi, not the start
    assert sol.event_t.shape == (2, 16) and sol.event_y.shape == (2, 16, 2)
    zeros = torch.tensor([[0.5, 1.5, 2.5], [1.0, 2.0, 3.0]], dtype=F64) * math.pi
    torch.testing.assert_close(sol.event_t[:, :3], zeros, rtol=0, atol=1e-9)
    assert bool(sol.event_t[:, 3:].isnan().all())
    torch.testing.assert_close(sol.event_y[:, :3, 0], torch.zeros(2, 3, dtype=F64), rtol=0, atol=1e-9)
    kept = nct.solve(
        nct.ODETerm(oscillator), y0, t, controller=ADAPTIVE, event=Event(height, terminal=False, max_crossings=2)
    )
    assert kept.event_count.tolist() == [3, 3]
    assert torch.equal(kept.event_t, sol.event_t[:, :2])


def test_events_run_backward_in_time_and_with_lengths():
    y0 = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=F64)  # sin t
    t = torch.tensor([[0.0, -1.0, -2.0, -4.0], [0.0, 1.0, 2.0, 4.0]], dtype=F64)
    sol = nct.solve(
        nct.ODETerm(oscillator),
        y0,
        t,
        controller=ADAPTIVE,
        event=Event(height, terminal=False),
        lengths=torch.tensor([4, 3]),
    )
    # Backward from 0 the first zero of sin is at -pi; forward, the one at pi lies past t = 2.
    assert sol.event_count.tolist() == [1, 0]
    torch.testing.assert_close(sol.event_t[0, 0], torch.tensor(-math.pi, dtype=F64), rtol=0, atol=1e-9)


def decay_to(y0, k, c, solver, controller):
    """`(event_t, event_y, ys)` of the decay from `y0` `[B]` at rates `k` `[B]` down to `c`."""
    event = Event(lambda t, y, args: y[:, 0] - c, direction=-1)
    t = torch.tensor([0.0, 1.0, 5.0], dtype=F64)
    sol = nct.solve(nct.ODETerm(decay), y0[:, None], t, args=k, solver=solver, controller=controller, event=event)
    return sol.event_t, sol.event_y[:, 0], sol.ys[..., 0]


@pytest.mark.parametrize(
    ("solver", "controller"),
    [(nct.Tsit5(), ADAPTIVE), (nct.RK4(), nct.ConstantStep(0.3))],
    ids=["Tsit5-adaptive", "RK4-fixed"],
)
def test_the_event_time_gradient_passes_gradcheck(solver, controller):
    y0 = torch.tensor([2.0, 3.0], dtype=F64, requires_grad=True)
    k = torch.tensor([1.0, 0.7], dtype=F64, requires_grad=True)
    c = torch.tensor(0.5, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *inputs: decay_to(*inputs, solver, controller), (y0, k, c))


def test_the_event_time_gradient_is_the_closed_form_one():
    y0 = torch.tensor([2.0, 3.0], dtype=F64, requires_grad=True)
    k = torch.tensor([1.0, 0.7], dtype=F64, requires_grad=True)
    c = torch.tensor(0.5, dtype=F64, requires_grad=True)
    event_t, event_y, _ = decay_to(y0, k, c, nct.Tsit5(), ADAPTIVE)
    d_y0, d_k, d_c = torch.autograd.grad(event_t.sum(), (y0, k, c), retain_graph=True)
    with torch.no_grad():  # t* = ln(y0 / c) / k
        torch.testing.assert_close(d_y0, 1 / (y0 * k), rtol=1e-8, atol=0)
        torch.testing.assert_close(d_k, -torch.log(y0 / c) / k**2, rtol=1e-8, atol=0)
        torch.testing.assert_close(d_c, (-1 / (c * k)).sum(), rtol=1e-8, atol=0)
    # y(t*) = c whatever the parameters: its gradient is that of c alone.
    d_y0, d_c = torch.autograd.grad(event_y.sum(), (y0, c))
    torch.testing.assert_close(d_y0, torch.zeros(2, dtype=F64), rtol=0, atol=1e-8)
    torch.testing.assert_close(d_c, torch.tensor(2.0, dtype=F64), rtol=0, atol=1e-8)


def test_the_impact_speed_gradient_through_the_event_is_the_closed_form_one():
    heights = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    sol = drop(heights, controller=nct.ConstantStep(0.1), event=FLOOR)
    (d_h,) = torch.autograd.grad(sol.event_y[:, 1].sum(), heights)  # v* = -sqrt(2 g h)
    torch.testing.assert_close(d_h, -torch.sqrt(G / (2 * heights.detach())), rtol=1e-10, atol=0)


def test_checkpointed_backprop_gives_the_same_event_gradient():
    y0 = torch.tensor([2.0, 3.0], dtype=F64, requires_grad=True)
    k = torch.tensor([1.0, 0.7], dtype=F64)
    event = Event(lambda t, y, args: y[:, 0] - 0.5)
    grads = []
    for gradient in (nct.Backprop(), nct.Backprop(checkpoint_every=3)):
        sol = nct.solve(
            nct.ODETerm(decay), y0[:, None], torch.tensor([0.0, 5.0], dtype=F64), args=k, event=event, gradient=gradient
        )
        grads.append(torch.autograd.grad(sol.event_t.sum() + sol.ys.sum(), y0)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=0)


def test_the_event_function_must_return_one_value_per_sample():
    bad = Event(lambda t, y, args: y)
    with pytest.raises(nct.IncompatibleTermError, match=r"`event.cond\(t, y, args\)` must return .* \[B\] = \(2,\)"):
        nct.solve(nct.ODETerm(decay), torch.ones(2, 1), torch.tensor([0.0, 1.0]), args=torch.ones(2), event=bad)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(cond=1.0), "`cond` must be a function"),
        (dict(cond=height, terminal=1), "`terminal` must be True or False"),
        (dict(cond=height, direction=2), "`direction` must be one of -1, 0, 1"),
        (dict(cond=height, direction=True), "`direction` must be -1, 0 or 1"),
        (dict(cond=height, max_crossings=0), "`max_crossings` must be a positive int"),
    ],
)
def test_a_bad_event_is_refused_naming_the_argument(options, message):
    with pytest.raises(nct.InvalidInputError, match=message):
        Event(**options)


def test_events_need_backprop_and_neuralcts_loop():
    term, y0, t = nct.ODETerm(decay), torch.ones(1, 1), torch.tensor([0.0, 1.0])
    with pytest.raises(nct.InvalidInputError, match="`event` needs `gradient=Backprop"):
        nct.solve(term, y0, t, args=torch.ones(1), event=FLOOR, gradient=nct.Backsolve())
    with pytest.raises(nct.InvalidInputError, match="`event` needs a step solver"):
        nct.solve(term, y0, t, args=torch.ones(1), event=FLOOR, solver=nct.TorchDiffEq("dopri5"))
    with pytest.raises(nct.InvalidInputError, match="`event` must be an Event"):
        nct.solve(term, y0, t, args=torch.ones(1), event=height)


@pytest.mark.slow
def test_events_and_saved_steps_run_under_compile():
    # The event function runs outside the compiled step; the compiled solve agrees to rounding.
    heights = torch.tensor([1.0, 2.0], dtype=F64)
    solves = [drop(heights, event=FLOOR, saveat=SaveAt(steps=True), compile=compile) for compile in (False, True)]
    torch.testing.assert_close(solves[1].event_t, solves[0].event_t, rtol=1e-12, atol=0)
    assert torch.equal(solves[1].mask, solves[0].mask)
