"""One attempted step of every running sample, and the verdict on it.

Tensor operations only, with no data-dependent Python branch: this is the part of a loop
iteration that `solve(..., compile=True)` hands to `torch.compile` (see `compile.py`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..controllers.base import Decision
from ..problem import Problem
from ..solvers.base import StepResult
from .clock import step_end
from .rows import finite_rows, where_rows
from .state import Attempt, LoopState


def attempt_step(problem: Problem, s: LoopState) -> Attempt:
    """Step every running sample once and decide, per sample, whether the step stands."""
    solver = problem.solver
    running = ~s.progress.done
    end = step_end(problem, s)
    out = solver.step(problem.term, s.clock.t, s.y, end.h, s.carry, problem.args, problem.want_coefficients)
    decision = problem.controller.adapt(s.y, out.y1, out.error, end.h, s.controller, running, solver.error_order)
    accept = _stands(decision, running, out, end.h)
    t = torch.where(accept, end.t1, s.clock.t)
    return Attempt(
        running=running,
        end=end,
        out=out,
        decision=decision,
        accept=accept,
        t=t,
        y=where_rows(accept, out.y1, s.y),
        carry=solver.merge_carry(accept, out.carry, s.carry),
        # Every accepted sample was running, so a running sample was rejected where the two differ.
        rejected=running != accept,
        finished=t == problem.t_end if problem.interpolate_saves else None,
    )


def _stands(decision: Decision, running: Tensor, out: StepResult, h: Tensor) -> Tensor:
    """`[B]` the steps that stand: accepted by the controller, of running samples, finite, not
    failed inside the solver and of non-zero size `h` `[B]`."""
    healthy = finite_rows(out.y1)
    if out.failed is not None:
        healthy = healthy & ~out.failed
    accept = running if decision.accept is None else decision.accept & running
    # A step below the time resolution leaves t unchanged and has zero error; accepting it
    # would repeat forever, so it is rejected and fails as DT_UNDERFLOW (see `progress.py`).
    # (`h.bool()` is `h != 0`.)
    return accept & healthy & h.bool()
