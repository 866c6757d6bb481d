"""One step from each knot to the next: the discrete-RNN view of a continuous model."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from .base import AbstractController, ControllerStart, ControllerState, Decision
from .constant import steady_decision


@dataclass(frozen=True)
class KnotToKnot(AbstractController):
    """Every step runs from one save or jump time of its sample to the next one.

    With the observation times as save times (or a piecewise-constant input, whose knots are
    jump times), a sample takes exactly one solver step per observation gap, whatever the gap:
    `Euler()` then gives the Euler-discretized RNN $h_{k+1} = h_k + \\Delta_k f(h_k, x_{k+1})$,
    and a solver with internal sub-steps (the LTC fused step with `unfolds`) spreads them evenly
    over each gap, as `ncps.torch.LTCCell` does with its elapsed time. Steps are never rejected.
    """

    @property
    def adaptive(self) -> bool:
        """Always `False`: every finite step is accepted."""
        return False

    def init(self, start: ControllerStart) -> tuple[Tensor, ControllerState, int]:
        """Propose the whole span; the loop shortens it to the next save or jump time."""
        reach = start.direction * start.span.to(start.direction.dtype)
        return reach, (reach,), 0

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
        """Accept every running sample's step and propose the whole span again, unchanged."""
        return steady_decision(state)
