"""Strides: fixed steps back to back, the loop's bookkeeping done once for all of them.

Under a `ConstantStep` most steps land on nothing: no save or jump time falls within them, every
running sample accepts them, and the general iteration (`loop._iterate`) spends about 30 tensor
operations per step deciding so (Euler-Maruyama on a small network: 42 besides the field's 11).
A look (`look.py`) also reads how many steps every running sample can take before a step could
reach its next boundary (`clear_steps`), and the loop then takes up to that many as one stride:
each step is the solver's step, the clock's arithmetic (`clock.step_end` with no boundary in
reach) and the masks that hold done samples still, nothing else.

What the iterations would decide one by one holds for a whole stride or not at all: every
running sample accepts every step, unless a step's end is not finite or its Newton iteration
failed (a state that is not finite stays so: every step adds to its start). The stride notes
on the device whether it held, and the next look reads that with its other values; a stride
that did not hold is discarded and its iterations run again one by one. So a solve gives bit
for bit the same result with strides as without (a field that draws random numbers draws them
again for the discarded stretch).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ..controllers.constant import ConstantStep
from ..problem import Problem
from ..solvers.base import Carry
from .counters import count
from .jumps import boundary
from .rows import finite_rows, where_rows
from .state import Clock, LoopState, Tally

# `stride_steps` with its count bound, and what gives, for the steps left in a stride, how many
# the next run takes and the function that takes them.
StrideSteps = Callable[[Problem, Clock, Tensor, Tensor, Tensor, Tensor, Carry], "StrideRun"]
StrideRuns = Callable[[int], tuple[int, StrideSteps]]

# The fewest steps worth a stride; the most is the look's `ahead`.
FEWEST = 2


class Trial(NamedTuple):
    """A stride taken since the last look: `before`, the state it started from, `steps`, the
    iterations since (the stride's, then any run one by one up to the look), and `held` `[]`
    boolean, whether each of the stride's would have accepted every running sample."""

    before: LoopState
    steps: int
    held: Tensor


def strides_apply(problem: Problem) -> bool:
    """Whether `problem` takes strides: a `ConstantStep` solve stepping onto its save times
    without an event, dense output or every-step saves."""
    plain = problem.event is None and not (problem.dense or problem.save_steps)
    return plain and type(problem.controller) is ConstantStep and not problem.interpolate_saves


def clear_steps(problem: Problem, state: LoopState, running: Tensor, most: int) -> Tensor:
    """`[]` integer: how many steps (at most `most`) every `running` `[B]` sample can take before
    one could end within reach of its boundary, a step short of it to spare the rounding of the
    step ends; 0 for a sample whose step is so small against its times that one could round to
    nothing."""
    clock = state.clock
    target, _ = boundary(problem, state)
    size = clock.h.abs()
    room = problem.along(target - clock.t) - clock.reach
    steps = torch.nan_to_num(torch.floor(room / size) - 1, nan=0.0, posinf=most, neginf=0.0).clamp(0, most)
    scale = torch.maximum(clock.t.abs(), target.abs())
    steps = torch.where(size > 4 * torch.finfo(size.dtype).eps * scale, steps, 0)
    return torch.where(running, steps, most).amin().long()


class StrideRun(NamedTuple):
    """What `stride_steps` returns: the time `t` `[B]`, state `y` `[B, *state]` and carry after the
    steps, `last_start` `[B]` the start time of the last one, `failed` `[B]` the samples whose
    Newton iteration failed in one (`None` for explicit solvers) and each step's evaluations."""

    t: Tensor
    y: Tensor
    carry: Carry
    last_start: Tensor
    failed: Tensor | None
    evals: tuple[int | Tensor, ...]


def stride_steps(
    problem: Problem, clock: Clock, ahead: Tensor, running: Tensor, t: Tensor, y: Tensor, carry: Carry, count: int
) -> StrideRun:
    """`count` steps of a stride from `(t [B], y [B, *state])`, the first to `ahead` `[B]` fixed
    steps of `clock`'s from its anchor (as `clock.step_end` for a step that reaches no boundary).
    Samples not `running` `[B]` take steps of size 0 and keep their state. What `solve(..., compile=True)` compiles,
    several steps to a call (`compile.py`)."""
    solver, failed, evals, last_start = problem.solver, None, [], t
    for j in range(count):
        last_start = t
        t1 = torch.where(running, torch.addcmul(clock.anchor, ahead + j if j else ahead, clock.h), t)
        out = solver.step(problem.term, t, y, t1 - t, carry, problem.args, problem.want_coefficients)
        carry = solver.merge_carry(running, out.carry, carry)
        failed = _union(failed, out.failed)
        # A done sample is held still, as in the general iteration: its state may be one where
        # the field is not finite (it failed there), and its steps of size 0 would then feed NaN
        # into the next ones, which backward turns into NaN gradients (0 * NaN).
        t, y = t1, where_rows(running, out.y1, y)
        evals.append(out.evals)
    return StrideRun(t, y, carry, last_start, failed, tuple(evals))


def eager_runs(left: int) -> tuple[int, StrideSteps]:
    """All `left` steps of a stride in one eager `stride_steps` call."""
    return left, functools.partial(stride_steps, count=left)


def stride(problem: Problem, state: LoopState, steps: int, runs: StrideRuns) -> tuple[LoopState, Tensor]:
    """`steps` loop iterations of `state` in which every running sample takes a full fixed step
    (`clear_steps` of them at most), in the runs of `stride_steps` that `runs` gives (`eager_runs`,
    or compiled pieces), and `[]` boolean whether they held."""
    clock, running = state.clock, ~state.done
    t, y, carry, counters, failed, done = clock.t, state.y, state.carry, state.counters, None, 0
    while done < steps:
        size, run_steps = runs(steps - done)
        run = run_steps(problem, clock, clock.ahead + done if done else clock.ahead, running, t, y, carry)
        t, y, carry, done = run.t, run.y, run.carry, done + size
        failed = _union(failed, run.failed)
        for evals in run.evals:
            counters = count(counters, Tally(running, running, evals), None, 0)
    held = _held(problem, state, running, (run.last_start, y, failed))
    after = dataclasses.replace(
        state,
        clock=dataclasses.replace(clock, t=t, ahead=torch.where(running, clock.ahead + steps, clock.ahead)),
        y=y,
        carry=carry,
        counters=counters,
        iteration=state.iteration + steps,
    )
    return after, held


def _union(failed: Tensor | None, more: Tensor | None) -> Tensor | None:
    """`[B]` the samples failed in either mask (`None`: none can fail)."""
    if more is None:
        return failed
    return more if failed is None else failed | more


def _held(problem: Problem, state: LoopState, running: Tensor, end: tuple[Tensor, Tensor, Tensor | None]) -> Tensor:
    """`[]` whether a stride from `state` held for its `running` `[B]` samples, from `end`: the
    start time of its last step `[B]`, its final state `[B, *state]` and the samples whose Newton
    iteration failed in a step (`[B]`, or `None`). It held when every final state is finite, no
    step failed, and its last step (so every step: the times increase) started out of reach of
    its boundary, as `clear_steps` made sure."""
    last_start, y, failed = end
    target, _ = boundary(problem, state)
    bad = ~finite_rows(y) | (problem.along(target - last_start) <= state.clock.reach)
    if failed is not None:
        bad = bad | failed
    return ~(bad & running).any()
