"""The step-size controller interface."""

from __future__ import annotations

import abc
from typing import Any

from torch import Tensor

from ..solvers.base import AbstractSolver
from ..terms.base import AbstractTerm

ControllerState = tuple[Tensor, ...]


class AbstractController(abc.ABC):
    """Chooses each sample's step size and whether its last step is accepted."""

    @property
    @abc.abstractmethod
    def adaptive(self) -> bool:
        """Whether steps are accepted or rejected from an error estimate."""

    @property
    def dt_min(self) -> float:
        """Smallest step magnitude allowed before a sample fails with `DT_UNDERFLOW`."""
        return 0.0

    def check_solver(self, solver: AbstractSolver) -> None:
        """Raise when this controller cannot drive `solver` (default: every solver works)."""

    @abc.abstractmethod
    def init(
        self,
        term: AbstractTerm,
        solver: AbstractSolver,
        t0: Tensor,
        y0: Tensor,
        f0: Tensor | None,
        direction: Tensor,
        span: Tensor,
        dt0: float | None,
        args: Any,
    ) -> tuple[Tensor, ControllerState, int]:
        """First signed step `[B]`, the controller state and the evaluations spent.

        Args:
            t0: `[B]` start times; `y0`: `[B, *state]`; `f0`: `[B, *state]` slope at the
                start when the solver has computed it, else `None`.
            direction: `[B]` +1 or -1; `span`: `[B]` length of each sample's interval.
            dt0: a user-given first step magnitude, or `None` to choose one.
        """

    @abc.abstractmethod
    def adapt(
        self,
        y0: Tensor,
        y1: Tensor,
        error: Tensor | None,
        h: Tensor,
        state: ControllerState,
        running: Tensor,
        error_order: int | None,
    ) -> tuple[Tensor, Tensor, ControllerState]:
        """Judge the step from `y0` to `y1` (`[B, *state]`) of signed size `h` `[B]`.

        Returns:
            `(accept [B] bool, next signed step [B], new state)`. A non-finite error
            is never accepted.
        """
