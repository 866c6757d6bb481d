"""The gradient-strategy interface: a strategy owns the step loop of a solve."""

from __future__ import annotations

import abc

from torch import Tensor

from ..problem import Problem
from ..solution import Solution


class AbstractGradient(abc.ABC):
    """How gradients of a solve are computed (the strategy runs the loop)."""

    def check(self, problem: Problem) -> None:
        """Raise when this strategy cannot differentiate `problem` (default: any problem)."""

    @abc.abstractmethod
    def run(self, problem: Problem, y0: Tensor) -> Solution:
        """Solve `problem` from `y0` `[B, *state]` and return the `Solution`."""
