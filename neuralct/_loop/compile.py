"""`solve(..., compile=True)`: the attempt step under `torch.compile`.

Only `attempt.attempt_step` is compiled; the bookkeeping around it stays eager (it reads
values to decide, e.g. whether any sample reached a save time). The step reads derived values
of the `Problem` (cached properties); `prepare` computes every one of them before the step is
traced, because one reads a tensor's value (`Problem.forward`) and torch.compile cannot enter
the lock that `functools.cached_property` takes on its first read (Python < 3.12).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from ..problem import Problem
from .attempt import attempt_step
from .state import Attempt, LoopState

AttemptStep = Callable[[Problem, LoopState], Attempt]

# The derived values of a `Problem`: all of its cached properties, read off the class.
DERIVED = tuple(name for name, member in vars(Problem).items() if isinstance(member, functools.cached_property))


def step_function(problem: Problem) -> AttemptStep:
    """The attempt step for `problem`: `attempt_step`, or its compiled form (after
    `prepare(problem)`) when the solve asked for `compile=True`."""
    if not problem.compile:
        return attempt_step
    prepare(problem)
    return _compiled_attempt_step()


def prepare(problem: Problem) -> None:
    """Compute every derived value of `problem` now, outside the compiled graph."""
    for name in DERIVED:
        getattr(problem, name)


@functools.cache
def _compiled_attempt_step() -> AttemptStep:
    """`attempt_step` under `torch.compile`, made once per process: torch compiles it again
    for each new dtype, term, solver and controller setting, and once more, with sizes left
    symbolic, when a size first changes."""
    return torch.compile(attempt_step)
