"""Progress: which samples finish, and which fail and why (their `Status`)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..problem import Problem
from ..solution import Status
from .rows import finite_rows
from .state import Attempt, LoopState, Progress


def first_progress(problem: Problem, f0: Tensor | None) -> Progress:
    """Progress at the start: a sample with one save time is done already; one whose slope
    `f0` `[B, *state]` at the start (when the solver computed it) is not finite fails, as no
    step size helps it."""
    ts = problem.ts
    batch, num_saves = ts.shape
    status = torch.full((batch,), int(Status.SUCCESS), dtype=torch.long, device=ts.device)
    if problem.lengths is None:
        done = torch.full((batch,), num_saves == 1, dtype=torch.bool, device=ts.device)
    else:
        done = problem.lengths == 1
    if f0 is not None:
        broken = ~finite_rows(f0) & ~done
        status = torch.where(broken, int(Status.NONFINITE), status)
        done = done | broken
    return Progress(status=status, done=done)


def update_progress(problem: Problem, s: LoopState, step: Attempt, finished: Tensor | None, reach: Tensor) -> Progress:
    """Progress after `step`: samples that reached their last save time (`finished` `[B]`,
    `None`: none can have) finish; those out of steps, step size or finite values fail.

    A rejected sample fails when an adaptive controller cannot shrink its step any further
    (below `dt_min`, or so small that `t + h == t`; the step factor is never NaN), or at once
    under a fixed step; its status says why its last step was rejected (NONFINITE,
    NEWTON_FAILED) or else DT_UNDERFLOW. `reach` `[B]` is the clock's reach for the next step.
    Device-side masks only: no value is read to decide.
    """
    if problem.controller.adaptive:
        failing = step.rejected & _stalled(problem, step, reach)
        done = s.progress.done | failing
    else:
        # Under a fixed step a rejected step cannot be retried smaller: it fails at once. A
        # step stands only for a running sample, so the samples done now are the others.
        failing = step.rejected
        done = ~step.accept
    if finished is not None:
        done = done | finished
    status = torch.where(failing, _failure_code(step), s.progress.status)
    if s.iteration + 1 >= problem.max_steps:
        # Samples run from the first iteration until they are done: one still running has
        # taken a step in every iteration.
        status = torch.where(done, status, int(Status.MAX_STEPS))
        done = torch.ones_like(done)
    return Progress(status=status, done=done)


def _stalled(problem: Problem, step: Attempt, reach: Tensor) -> Tensor:
    """`[B]` samples whose next attempt cannot differ from the rejected one: its step vanishes
    (`t + h == t`) or falls below `dt_min`, or the rejected step was stretched onto its
    boundary and the next would be stretched onto it again (the boundary lies within the
    rounding slack `reach` `[B]` of the times, as with float32 times far from 0 over a span of
    a few ulps)."""
    t, h_next = step.t, step.decision.h_next
    stalled = t + h_next == t
    if problem.controller.dt_min > 0:
        stalled = stalled | ~(h_next.abs() >= problem.controller.dt_min)
    return stalled | (step.end.hit & (problem.along(step.end.t1 - t) <= reach))


def _failure_code(step: Attempt) -> Tensor:
    """`[B]` status code explaining a rejected step: NONFINITE, NEWTON_FAILED or DT_UNDERFLOW."""
    code = torch.where(step.finite, int(Status.DT_UNDERFLOW), int(Status.NONFINITE))
    failed = step.out.failed
    if failed is not None:
        code = torch.where(failed & (code == int(Status.DT_UNDERFLOW)), int(Status.NEWTON_FAILED), code)
    return code
