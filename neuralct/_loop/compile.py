"""`solve(..., compile=True)`: the attempt step under `torch.compile`, and which solvers it takes.

Steps that are fixed tensor arithmetic compile: explicit Runge-Kutta methods, the step maps
(`AbstractStepMapSolver`: the LTC fused step, symplectic Euler), the fixed-step SDE solvers on a
`BrownianGrid`, and the method of steps, whose history lookups (sizes that grow with the solve)
run eagerly between the compiled pieces (`torch.compiler.disable` in `solvers/dde`).

Only `attempt.attempt_step` is compiled, and under a `ConstantStep` the steps of a stride
(`strides.stride_steps`: the solver's steps and the clock's arithmetic, several to a call); the
bookkeeping around them stays eager (it reads
values to decide, e.g. whether any sample reached a save time). The step reads derived values
of the `Problem` (cached properties); `prepare` computes every one of them before the step is
traced, because one reads a tensor's value (`Problem.forward`) and torch.compile cannot enter
the lock that `functools.cached_property` takes on its first read (Python < 3.12).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from ..paths.brownian_grid import BrownianGrid
from ..problem import AbstractRunner, Problem
from ..solvers.base import AbstractSolver, AbstractStepMapSolver
from ..solvers.dde import MethodOfSteps
from ..solvers.rk import AbstractExplicitRK
from ..solvers.sde import AbstractSDESolver
from ..terms.base import AbstractTerm
from ..terms.sde import SDETerm
from .attempt import attempt_step
from .checks import deferring
from .state import Attempt, LoopState
from .strides import StrideRuns, StrideSteps, eager_runs, stride_steps

AttemptStep = Callable[[Problem, LoopState], Attempt]

# The derived values of a `Problem`: all of its cached properties, read off the class.
DERIVED = tuple(name for name, member in vars(Problem).items() if isinstance(member, functools.cached_property))


# Solvers whose steps are fixed tensor arithmetic on any term they accept.
TRACEABLE = (AbstractExplicitRK, AbstractStepMapSolver, MethodOfSteps)


def compile_refusal(solver: AbstractSolver | AbstractRunner, term: AbstractTerm) -> str | None:
    """Why `solve(..., compile=True)` cannot compile the steps of `solver` on `term`, or `None`
    when it can: the solver is one of `TRACEABLE`, or a fixed-step SDE solver whose Brownian
    motion is a `BrownianGrid` (a tree search, or torchsde's interval, is Python per query)."""
    if isinstance(solver, TRACEABLE):
        return None
    if isinstance(solver, AbstractSDESolver):
        if not isinstance(term, SDETerm):
            return None  # `check_term` refuses it, naming both
        brownian = term.noise.brownian
        if isinstance(brownian, BrownianGrid):
            return None
        return (
            f"{type(solver).__name__} compiles with a BrownianGrid only (one gather per step), "
            f"not with a {type(brownian).__name__}"
        )
    return (
        f"{type(solver).__name__} is not one of the solvers whose steps are fixed tensor arithmetic "
        f"(explicit Runge-Kutta, LTCFused, SymplecticEuler, MethodOfSteps, SDE solvers on a BrownianGrid)"
    )


def step_function(problem: Problem) -> AttemptStep:
    """The attempt step for `problem`: `attempt_step`, or its compiled form (after
    `prepare(problem)`) when the solve asked for `compile=True`, run with the problem's
    deferred checks current (`checks.py`)."""
    if not problem.compile:
        return deferring(problem, attempt_step)
    prepare(problem)
    return deferring(problem, _compiled_attempt_step())


def prepare(problem: Problem) -> None:
    """Compute every derived value of `problem` now, outside the compiled graph."""
    for name in DERIVED:
        getattr(problem, name)


def stride_runs(problem: Problem) -> StrideRuns:
    """How the steps of a stride (`strides.py`) run for `problem`: all in one eager call, or with
    `compile=True` (after `step_function(problem)` prepared the problem) in compiled pieces of
    `STRIDE_CHUNK` steps and single ones, a few steps to a call so that a compiled call's fixed
    cost is not paid at every step."""
    return _compiled_runs if problem.compile else eager_runs


# Steps per compiled call in a stride: fewer pay a compiled call's fixed cost more often, more
# take longer to compile (the steps are unrolled into one graph).
STRIDE_CHUNK = 8


def _compiled_runs(left: int) -> tuple[int, StrideSteps]:
    """`STRIDE_CHUNK` steps in one compiled call while that many are left, then one at a time."""
    size = STRIDE_CHUNK if left >= STRIDE_CHUNK else 1
    return size, _compiled_stride_steps(size)


@functools.cache
def _compiled_stride_steps(size: int) -> StrideSteps:
    """`stride_steps` of `size` steps under `torch.compile`, made once per process and size."""
    return torch.compile(functools.partial(stride_steps, count=size))


@functools.cache
def _compiled_attempt_step() -> AttemptStep:
    """`attempt_step` under `torch.compile`, made once per process: torch compiles it again
    for each new dtype, term, solver and controller setting, and once more, with sizes left
    symbolic, when a size first changes."""
    return torch.compile(attempt_step)
