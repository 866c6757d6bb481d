"""The step-size controller interface."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, NamedTuple

from torch import Tensor

from ..solvers.base import AbstractSolver
from ..terms.base import AbstractTerm

ControllerState = tuple[Tensor, ...]


@dataclass(frozen=True)
class ControllerStart:
    """Where a solve starts: what a controller needs to choose the first step.

    Attributes:
        term: the term being solved.
        solver: the solver that steps it (its `error_order` scales a starting-step heuristic).
        t0: `[B]` start times.
        y0: `[B, *state]` start states.
        f0: `[B, *state]` slope at the start when the solver has computed it, else `None`.
        direction: `[B]` +1 or -1, the direction of each sample's time grid.
        span: `[B]` length of each sample's interval.
        dt0: a user-given first step magnitude, or `None` to choose one.
        args: the extra argument of the vector field.
    """

    term: AbstractTerm
    solver: AbstractSolver
    t0: Tensor
    y0: Tensor
    f0: Tensor | None
    direction: Tensor
    span: Tensor
    dt0: float | None
    args: Any


class Decision(NamedTuple):
    """A controller's verdict on one attempted step, per sample.

    Attributes:
        accept: `[B]` bool, which steps stand, or `None` for every running sample's (the
            loop accepts only running samples, with finite states, in any case).
        h_next: `[B]` the next signed step size.
        state: the controller's state after the step.
        changed: `False` promises that `h_next` equals, value for value, the `h_next` of
            this controller's previous decision; the loop then keeps what it derived from
            that step size (how far a step may be stretched, the fixed-step count). `True`
            when it may differ. The first decision of a solve is always compared by value.
    """

    accept: Tensor | None
    h_next: Tensor
    state: ControllerState
    changed: bool


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
    def init(self, start: ControllerStart) -> tuple[Tensor, ControllerState, int]:
        """First signed step `[B]`, the controller state and the evaluations spent, from where
        the solve `start`s."""

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
    ) -> Decision:
        """Judge the step from `y0` to `y1` (`[B, *state]`) of signed size `h` `[B]` taken by
        the `running` `[B]` samples; `error` `[B, *state]` is the solver's error estimate of
        order `error_order` (`None` for solvers without one).

        Returns:
            The `Decision`. A non-finite error is never accepted.
        """
