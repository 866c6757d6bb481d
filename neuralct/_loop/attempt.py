"""One attempted step of every running sample, and the verdict on it.

Tensor operations only, with no data-dependent Python branch: this is the part of a loop
iteration that `solve(..., compile=True)` hands to `torch.compile` (see `compile.py`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..controllers.base import Decision
from ..controllers.constant import ConstantStep, steady_decision
from ..controllers.knots import KnotToKnot
from ..problem import Problem
from ..solvers.base import StepResult
from .clock import step_end
from .rows import finite_rows, where_rows
from .state import Attempt, LoopState

# Controllers whose every decision is "accept, and propose the same step again" (`state[0]`):
# the loop builds it without asking them (their subclasses, which may decide otherwise, are asked).
STEADY = (ConstantStep, KnotToKnot)


def attempt_step(problem: Problem, s: LoopState) -> Attempt:
    """Step every running sample once and decide, per sample, whether the step stands."""
    solver = problem.solver
    running = ~s.progress.done
    end = step_end(problem, s)
    out = solver.step(problem.term, s.clock.t, s.y, end.h, s.carry, problem.args, problem.want_coefficients)
    decision = _decide(problem, s, out, end.h, running)
    finite = finite_rows(out.y1)
    accept = _stands(decision, running, finite if out.failed is None else finite & ~out.failed, end.h)
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
        finite=finite,
        finished=t == problem.t_end if problem.interpolate_saves else None,
    )


def _decide(problem: Problem, s: LoopState, out: StepResult, h: Tensor, running: Tensor) -> Decision:
    """The controller's `Decision` on the step `out` of signed size `h` `[B]` of the `running`
    `[B]` samples; a `STEADY` controller's is built directly (it has no error to judge)."""
    if type(problem.controller) in STEADY:
        return steady_decision(s.controller)
    return problem.controller.adapt(s.y, out.y1, out.error, h, s.controller, running, problem.solver.error_order)


def _stands(decision: Decision, running: Tensor, healthy: Tensor, h: Tensor) -> Tensor:
    """`[B]` the steps that stand: accepted by the controller, of running samples, `healthy`
    `[B]` (finite, not failed inside the solver) and of non-zero size `h` `[B]`."""
    accept = running if decision.accept is None else decision.accept & running
    # A step below the time resolution leaves t unchanged and has zero error; accepting it
    # would repeat forever, so it is rejected and fails as DT_UNDERFLOW (see `progress.py`).
    # (`h.bool()` is `h != 0`.)
    return accept & healthy & h.bool()
