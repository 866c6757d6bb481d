"""Looks: the loop's only reads of device values, one every few iterations.

A step decides nothing on the host: every rare path (a rejection, a landing on a save or
jump time, a failure) is a device-side mask, and an iteration after a sample is done is an
exact no-op for it. So the loop need not know, at every step, whether any sample is still
running. It looks every few iterations instead (after 1, 1, 1, 2, 3, 4, 6, 9, ... iterations,
half the iterations so far, up to `CHECK_EVERY`), and reads, in one transfer,
how many samples still run, an estimate of the iterations the slowest needs, and the width
of the outputs its window of steps has to write (`saves.pending`), with the checks its
steps' path queries deferred (`checks.py`). On a GPU a read waits for
every queued kernel; one read per iteration would leave the device idle between steps.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch

from ..problem import Problem
from . import checks
from .saves import SAVE_WINDOW, Pending, flush, pending
from .state import LoopState
from .strides import Trial, clear_steps, strides_apply

# The most iterations between two looks (unless the window or `max_steps` ends sooner). A look
# comes after the estimated iterations the slowest running sample still needs, however few: an
# iteration after every sample is done still evaluates the field on the whole batch, and a solve
# of ten steps that ran on three no-op iterations spent 30% more evaluations (18 of 62 on the
# neural-ODE work-precision case). Early on the gap between looks is at most half the iterations
# taken so far, so a short solve (a few steps, as between two save times of an adjoint) runs at
# most about half as many no-op iterations as it took steps, however wrong the estimate from its
# first step size is; a long one still looks about once per `CHECK_EVERY` iterations, plus the
# few looks of its final approach.
CHECK_EVERY = 32


class Look(NamedTuple):
    """What a look read: `running`, the samples still running; `ahead`, the iterations to take
    before the next look (0 when every sample is done); `clear`, the steps every running sample
    can take as one stride (`strides.clear_steps`; 0 in solves without strides); `held`, whether
    the stride taken since the last look held (when it did not, the look returns the state
    before it, and nothing else it read counts)."""

    running: int
    ahead: int
    clear: int = 0
    held: bool = True


def look(problem: Problem, state: LoopState, trial: Trial | None = None) -> tuple[LoopState, Look]:
    """Read the state's progress from the device (one read), with the verdict on the stride
    `trial` that led to `state` (`None`: none did), and write out its window of saves when it
    could not take the iterations up to the next look: `(state, look)`."""
    most = _most_ahead(problem, state.iteration)
    full = len(state.saves.window) + most > SAVE_WINDOW
    running = ~state.done
    zero = torch.zeros((), dtype=torch.long, device=running.device)
    clear = clear_steps(problem, state, running, CHECK_EVERY) if strides_apply(problem) else zero
    held = zero + 1 if trial is None else trial.held.long()
    values = [running.sum(), _iterations_left(problem, state, running), clear, held]
    if full:
        values.extend(pending(problem, state.clock.t, state.saves).unbind())
    read = checks.read(problem, torch.stack(values))  # with the steps' deferred checks
    if trial is not None and not read[3]:
        return trial.before, Look(running=int(read[0]), ahead=trial.steps, held=False)
    if full:
        todo = Pending(int(read[4]), bool(read[5]))
        state = dataclasses.replace(state, saves=flush(problem, state.clock.t, state.y, state.saves, todo))
    count = int(read[0])
    window_room = SAVE_WINDOW - len(state.saves.window)
    ahead = min(max(int(read[1]), 1), most, window_room) if count else 0
    return state, Look(running=count, ahead=ahead, clear=int(read[2]))


def _most_ahead(problem: Problem, iteration: int) -> int:
    """The most iterations to take before the next look, after `iteration` iterations: half of
    those, up to `CHECK_EVERY`, as the estimate of the iterations left may be wrong; under a
    `ConstantStep`, whose estimate is a lower bound (or one more, for a last step stretched
    onto the end), `CHECK_EVERY` from the second iteration on (the first runs alone: its
    checks in `loop._check_first_step`)."""
    if strides_apply(problem):
        return 1 if iteration == 0 else CHECK_EVERY
    return max(1, min(CHECK_EVERY, iteration // 2))


def _iterations_left(problem: Problem, state: LoopState, running: torch.Tensor) -> torch.Tensor:
    """`[]` integer: the most iterations a running sample (`running` `[B]`) needs at its
    proposed step size to reach its end (at most `CHECK_EVERY`): a lower bound under a fixed
    step, an estimate under an adaptive one."""
    clock = state.clock
    left = problem.along(problem.t_end - clock.t) / clock.h.abs()
    left = torch.nan_to_num(left, nan=CHECK_EVERY, posinf=CHECK_EVERY).clamp(0, CHECK_EVERY).ceil()
    return torch.where(running, left, 0).amax().long()
