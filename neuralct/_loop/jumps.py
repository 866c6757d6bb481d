"""Boundaries: the times a sample must land on exactly (its next save time, or jump time).

A jump time is where the term is not smooth (a knot of a piecewise input). A step that
lands on one stops a hair short of it when the solver reads the term at the step's end, and
the solver's carry restarts from the limit past it, so no stage straddles the jump.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..problem import Problem
from ..solvers.base import Carry
from .state import Attempt, LoopState


def boundary(problem: Problem, s: LoopState) -> tuple[Tensor, Tensor | None]:
    """`[B]` the next time each sample must land on exactly, and `[B]` whether it is a jump
    time (`None` without jumps)."""
    direction = problem.direction
    next_time = problem.t_end if problem.interpolate_saves else s.saves.save_time
    if problem.jumps is None:
        return next_time, None
    jump = problem.jump_table.gather(1, s.clock.next_jump.unsqueeze(1)).squeeze(1)
    at_jump = jump <= next_time if problem.forward else direction * (jump - next_time) <= 0
    return torch.where(at_jump, jump, next_time), at_jump


def jump_margin(t0: Tensor, t1: Tensor) -> Tensor:
    """`[B]` a few ulps of the larger of the times `t0`, `t1` `[B]`: more than the rounding
    in `t0 + c * h`."""
    scale = torch.maximum(torch.maximum(t0.abs(), t1.abs()), torch.ones_like(t0))
    return 4 * torch.finfo(t0.dtype).eps * scale


def short_of_jumps(h: Tensor, t0: Tensor, t1: Tensor, to_jump: Tensor, direction: Tensor) -> Tensor:
    """`[B]` the step sizes `h` with steps from `t0` that land on a jump time at `t1`
    (`to_jump`, all `[B]`) stopped a hair short of it, so that every stage (c = 1 included)
    sees the vector field before the jump whichever side the term returns at the jump itself;
    the sample is still placed exactly on the jump (`t1`)."""
    margin = jump_margin(t0, t1)
    return torch.where(to_jump & (h.abs() > 2 * margin), h - direction * margin, h)


def start_time(problem: Problem, t0: Tensor) -> Tensor:
    """`[B]` where the solver starts: `t0`, or the limit past it for a sample that starts on a
    jump time (the first knot of a piecewise-constant input), as after landing on one."""
    if problem.jumps is None:
        return t0
    at_start = (problem.jumps == t0[:, None]).any(dim=1)
    return torch.where(at_start, t0 + problem.direction * jump_margin(t0, t0), t0)


def first_jump(problem: Problem, t0: Tensor, zeros: Tensor) -> Tensor:
    """`[B]` index of each sample's first jump time after its start `t0` (`zeros` without jumps)."""
    if problem.jumps is None:
        return zeros
    return (problem.direction[:, None] * (problem.jumps - t0[:, None]) <= 0).sum(dim=1)


def cross_jumps(problem: Problem, s: LoopState, step: Attempt) -> tuple[Carry, Tensor, Tensor | None, int]:
    """Move the samples that landed on a jump time past it: `(carry, next_jump, jumped, evals)`.

    Their carry restarts from the limit past the jump (evaluated a hair past it, see
    `short_of_jumps`), at `evals` evaluations for each sample in `jumped` `[B]` (`None`, and
    nothing changed, without jumps or carry). A sample that stepped onto its last time is done: a jump
    there needs no restart.
    """
    next_jump, at_jump = s.clock.next_jump, step.end.at_jump
    if at_jump is None:
        return step.carry, next_jump, None, 0
    jumped = step.accept & step.end.hit & at_jump & (step.t != problem.t_end)
    if not step.carry:
        # A solver that carries nothing from step to step has nothing to restart.
        return step.carry, next_jump + jumped, None, 0
    # Every sample restarts, and only those that jumped keep it: a masked no-op for the others
    # instead of a read of `jumped.any()` at every step (jumps are rare, or, at the knots of
    # a linear or rectilinear path, nearly every step's).
    past = step.t + problem.direction * jump_margin(step.t, step.t)
    restarted, evals = problem.solver.init(problem.term, past, step.y, problem.args)
    return problem.solver.merge_carry(jumped, restarted, step.carry), next_jump + jumped, jumped, evals
