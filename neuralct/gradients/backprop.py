"""Discretise-then-optimise: autograd through every solver operation, optionally checkpointed."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .._loop import LoopState, Problem, advance, finish, initial_state
from ..errors import InvalidInputError
from ..solution import Solution
from .base import AbstractGradient


@dataclass(frozen=True)
class Backprop(AbstractGradient):
    """Backpropagate through the solver's operations (exact gradients of the discrete solve).

    Memory grows with the number of steps. With `checkpoint_every=k`, only the loop state
    every k steps is kept and each stretch of k steps is recomputed during the backward pass
    (Griewank & Walther, "Algorithm 799: revolve", ACM TOMS 26, 2000, in its simplest
    uniform form): memory falls to about (steps / k + k) step states for one extra forward pass.

    Args:
        checkpoint_every: steps per recomputed stretch, or `None` to store everything.
    """

    checkpoint_every: int | None = None

    def __post_init__(self) -> None:
        k = self.checkpoint_every
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k <= 0):
            raise InvalidInputError(f"`checkpoint_every` must be None or a positive int; got {k!r}")

    def run(self, problem: Problem, y0: Tensor) -> Solution:
        """Solve with the autograd tape on (checkpointed when asked and gradients are enabled)."""
        state = initial_state(problem, y0)
        if self.checkpoint_every is None or not torch.is_grad_enabled():
            return finish(problem, advance(problem, state))
        while not bool(state.done.all()):
            state = self._stretch(problem, state)
        return finish(problem, state)

    def _stretch(self, problem: Problem, state: LoopState) -> LoopState:
        def run_stretch(start: LoopState) -> LoopState:
            return advance(problem, start, self.checkpoint_every)

        return checkpoint(run_stretch, state, use_reentrant=False)
