"""Fixed step size."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from ..errors import InvalidInputError
from .base import AbstractController, ControllerStart, ControllerState, Decision


def steady_decision(state: ControllerState) -> Decision:
    """The decision of a controller without an error to judge: accept every running sample's
    step and propose the signed step `state[0]` `[B]` again, unchanged."""
    return Decision(accept=None, h_next=state[0], state=state, changed=False)


@dataclass(frozen=True)
class ConstantStep(AbstractController):
    """Steps of size `dt`, shortened only to land exactly on save times and jump times.

    Args:
        dt: positive step magnitude (in the direction of each sample's time grid).
    """

    dt: float

    def __post_init__(self) -> None:
        if not (isinstance(self.dt, (int, float)) and math.isfinite(self.dt) and self.dt > 0):
            raise InvalidInputError(f"`dt` must be a positive finite number; got {self.dt!r}")

    @property
    def adaptive(self) -> bool:
        """Always `False`: every finite step is accepted."""
        return False

    def init(self, start: ControllerStart) -> tuple[Tensor, ControllerState, int]:
        """First step `dt` (or `dt0` if given) in each sample's direction; no evaluations.
        The state holds the signed step `dt` `[B]` that every later step proposes."""
        step = start.direction * self.dt
        return step if start.dt0 is None else start.direction * start.dt0, (step,), 0

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
        """Accept every running sample's step; the next one is `dt` again, unchanged."""
        return steady_decision(state)
