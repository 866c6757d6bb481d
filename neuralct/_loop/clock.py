"""The clock: where each sample's step ends, and the time and step size after it."""

from __future__ import annotations

import torch
from torch import Tensor

from ..problem import Problem
from .jumps import boundary, short_of_jumps
from .state import Attempt, Clock, LoopState, StepEnd


def first_clock(problem: Problem, t0: Tensor, t_start: Tensor, h: Tensor, next_jump: Tensor) -> Clock:
    """The clock at the start `t0` `[B]` (the solver starts at `t_start`, see
    `jumps.start_time`) with the controller's first step `h` `[B]`."""
    # `anchor` a tensor of its own: under `compile=True` the aliasing of the loop state stays
    # that of later steps, which spares a recompilation.
    return Clock(
        t=t0,
        h=h,
        reach=reach(problem, h, t0),
        anchor=t_start.clone(),
        ahead=torch.ones_like(t0),
        next_jump=next_jump,
    )


def step_end(problem: Problem, s: LoopState) -> StepEnd:
    """Where each sample's next step ends, and the step size that gets it there."""
    clock = s.clock
    target, at_jump = boundary(problem, s)
    # A step that would end short of the boundary by rounding (ten steps of 0.1 end at
    # 0.9999999999999999; long runs accumulate more) or by at most 0.1% of the step is
    # stretched onto it instead of leaving a sliver step.
    remaining = problem.along(target - clock.t)
    hit = remaining <= clock.reach
    free_end = clock.t + clock.h if problem.controller.adaptive else torch.addcmul(clock.anchor, clock.ahead, clock.h)
    t1 = torch.where(hit, target, free_end)
    h = t1 - clock.t
    if at_jump is not None and problem.solver.reads_step_end:
        h = short_of_jumps(h, clock.t, t1, hit & at_jump, problem.direction)
    return StepEnd(t1=t1, h=h, hit=hit, at_jump=at_jump)


def reach(problem: Problem, h: Tensor, t: Tensor) -> Tensor:
    """`[B]` how far short of a boundary a step of size `h` `[B]` from `t` `[B]` may end and still
    be stretched onto it: 0.1% of the step plus a few ulps of the times. Fixed steps accumulate
    rounding over the whole span, so theirs are ulps of the largest time (`time_slack`); an
    adaptive step's end is rounded once, so its are ulps of the step's own times. (Ulps of the
    largest time would let a step from 0 stretch by 9e-5 on a span to 1e11, and declare a rejected
    first step there unable to shrink.)"""
    size = h.abs()
    if problem.controller.adaptive:
        slack = torch.add(t.abs(), size).mul_(4 * torch.finfo(t.dtype).eps)
    else:
        slack = problem.time_slack
    return torch.add(slack, size, alpha=1.001)


def advance_clock(problem: Problem, s: LoopState, step: Attempt, next_jump: Tensor, landed: Tensor | None) -> Clock:
    """The clock after `step`, with the next jump index `next_jump` `[B]`; `landed` `[B]` are
    the samples that stepped onto a boundary (`None` when none did)."""
    h_next = step.decision.h_next
    # The first decision has no earlier one to be unchanged from.
    changed = step.decision.changed or s.iteration == 0
    anchor, ahead = _count_fixed_steps(problem, s, step, landed, changed)
    return Clock(
        t=step.t,
        h=h_next,
        reach=reach(problem, h_next, step.t) if changed else s.clock.reach,
        anchor=anchor,
        ahead=ahead,
        next_jump=next_jump,
    )


def _count_fixed_steps(
    problem: Problem, s: LoopState, step: Attempt, landed: Tensor | None, changed: bool
) -> tuple[Tensor, Tensor]:
    """`(anchor, ahead)` after a step under a fixed-step controller: counting restarts where a
    sample landed on a boundary (`landed` `[B]`) or changed its step size (see `Clock`);
    unused, and left as they are, under an adaptive one."""
    if problem.controller.adaptive:
        return s.clock.anchor, s.clock.ahead
    restart = landed
    if changed:
        resized = step.decision.h_next != s.clock.h
        restart = resized if landed is None else landed | resized
    if restart is None:
        return s.clock.anchor, s.clock.ahead + step.accept
    return torch.where(restart, step.t, s.clock.anchor), torch.where(restart, 1.0, s.clock.ahead + step.accept)
