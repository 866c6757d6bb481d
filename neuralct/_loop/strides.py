"""Strides: fixed steps back to back, the loop's bookkeeping done once for all of them.

Under a `ConstantStep` most steps land on nothing: no save or jump time falls within them, every
running sample accepts them, and the general iteration (`loop._iterate`) spends about 30 tensor
operations per step deciding so (Euler-Maruyama on a small network: 42 besides the field's 11).
A look (`look.py`) also reads how many steps every running sample can take before a step could
reach its next boundary (`clear_steps`), and the loop then takes up to that many as one stride:
each step is the solver's step and the clock's arithmetic (`clock.step_end` with no boundary in
reach), nothing else.

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
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ..controllers.constant import ConstantStep
from ..problem import Problem
from ..solvers.base import Carry, StepResult
from .counters import count
from .jumps import boundary
from .rows import finite_rows, where_rows
from .state import Clock, LoopState, Tally

StrideStep = Callable[[Problem, Clock, Tensor, Tensor, Tensor, Tensor, Carry], tuple[Tensor, StepResult, Carry]]

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


def stride_step(
    problem: Problem, clock: Clock, ahead: Tensor, running: Tensor, t: Tensor, y: Tensor, carry: Carry
) -> tuple[Tensor, StepResult, Carry]:
    """One step of a stride: `(t1, out, carry)`, the solver's step `out` from `(t [B], y [B, *state])`
    to `t1` `[B]`, `ahead` `[B]` fixed steps of `clock`'s from its anchor (as `clock.step_end`
    for a step that reaches no boundary), and the carry after it. Samples not `running` `[B]`
    take a step of size 0. What `solve(..., compile=True)` compiles in a stride."""
    t1 = torch.where(running, torch.addcmul(clock.anchor, ahead, clock.h), t)
    out = problem.solver.step(problem.term, t, y, t1 - t, carry, problem.args, problem.want_coefficients)
    return t1, out, problem.solver.merge_carry(running, out.carry, carry)


def stride(problem: Problem, state: LoopState, steps: int, step: StrideStep) -> tuple[LoopState, Tensor]:
    """`steps` loop iterations of `state` in which every running sample takes a full fixed step
    (`clear_steps` of them at most), each by `step` (`stride_step` or its compiled form), and
    `[]` boolean whether they held."""
    clock = state.clock
    running = ~state.done
    t, y, carry, counters, failed = clock.t, state.y, state.carry, state.counters, None
    for k in range(steps):
        last_start = t
        t, out, carry = step(problem, clock, clock.ahead + k if k else clock.ahead, running, t, y, carry)
        if out.failed is not None:
            failed = out.failed if failed is None else failed | out.failed
        y = out.y1
        counters = count(counters, Tally(running, running, out.evals), None, 0)
    held = _held(problem, state, running, (last_start, y, failed))
    after = dataclasses.replace(
        state,
        clock=dataclasses.replace(clock, t=t, ahead=torch.where(running, clock.ahead + steps, clock.ahead)),
        y=where_rows(running, y, state.y),
        carry=carry,
        counters=counters,
        iteration=state.iteration + steps,
    )
    return after, held


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
