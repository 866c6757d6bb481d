"""Deferred checks: what a step's path queries check on the device, read with the loop's reads.

A step that queries a `BrownianGrid` checks that its times lie on the grid; reading that back
at every step would sync the host with the device once per step. Instead each step of a solve
runs with the solve's `DeferredChecks` (`neuralct.paths.deferred`) current: the queries note
their checks on the device and the loop reads them in the same transfer as its own reads, the
looks (`look.py`) and the read that settles a solve or stretch (`saves.read_pending`); a check
that failed raises its error there, the one an immediate check would have raised.

Every solve, and every stretch a gradient strategy runs, ends with `settle`, and `settle` reads
`read_pending` whenever saves are not interpolated: only those solves defer (the fixed-step SDE
solvers, which query a `BrownianGrid`, step onto their save times and never interpolate), so no
noted check goes unread. Each `Problem` has its own checks, forgotten with it, so checks noted
by a solve that raised are never read by another.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor

from ..paths.deferred import DeferredChecks
from ..problem import Problem
from .state import LoopState

R = TypeVar("R")

# The checks of each live `Problem`, by id (a `Problem` need not be hashable); an entry is
# removed when its problem is collected, before its id can be reused.
_CHECKS: dict[int, DeferredChecks] = {}


def deferring(problem: Problem, step: Callable[..., R]) -> Callable[..., R]:
    """`step(problem, state, *rest)` run with `problem`'s deferred checks current, or `step`
    itself for a solve that interpolates its saves (which may end without a read)."""
    if problem.interpolate_saves:
        return step
    checks = _CHECKS.get(id(problem))
    if checks is None:
        checks = _CHECKS[id(problem)] = DeferredChecks()
        weakref.finalize(problem, _CHECKS.pop, id(problem), None)

    def deferred(problem: Problem, state: LoopState, *rest: object) -> R:
        with checks:
            return step(problem, state, *rest)

    return deferred


def read(problem: Problem, values: Tensor) -> list:
    """`values` `[n]` read from the device as a list, in one transfer with the checks `problem`'s
    steps noted since the last read.

    Raises:
        The error of the first noted check that failed (`InvalidInputError` for a query off a
        `BrownianGrid`).
    """
    checks = _CHECKS.get(id(problem))
    passed = None if checks is None else checks.passed()
    if checks is None or passed is None:
        return values.tolist()
    both = torch.cat([values, passed.to(device=values.device, dtype=values.dtype).reshape(1)]).tolist()
    checks.conclude(bool(both[-1]))
    return both[:-1]
