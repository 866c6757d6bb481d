"""`Event`: stop a sample, or record the times, where a function of its state crosses zero."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ._checks import check_choice, check_instance, check_int, invalid

EventFunction = Callable[[Tensor, Tensor, Any], Tensor]


@dataclass(frozen=True)
class Event:
    """A zero crossing of `cond(t, y, args)` along each sample's solve.

    After every accepted step the loop evaluates `cond` at the step's end; where its sign
    changes (in the chosen `direction`, along the solve), the crossing is located on the
    step's dense interpolant by the Illinois method (a bracketed secant: Dowell & Jarratt,
    "A modified regula falsi method for computing the root of an equation", BIT 11, 1971) to
    the resolution of the times, not at the step's end. Each sample finds its own crossings.

    The crossing time is differentiable under `Backprop` by the implicit function theorem:
    $dt^*/d\\theta = -(\\partial_\\theta c + \\partial_y c \\cdot \\partial_\\theta y) / (dc/dt)$ along
    the interpolant, and the state there as $y(t^*)$ (see the solving guide's "Events").

    Args:
        cond: `cond(t, y, args) -> [B]`, called with `t` `[B]` and `y` `[B, *state]` like a
            vector field; row b must depend on row b alone. A sign change of row b between
            two step ends is a crossing of sample b; a value of exactly zero at a step's start
            does not start one (so a crossing is not counted twice).
        terminal: stop each sample at its first crossing (`Status.EVENT`), or go on and
            record up to `max_crossings` crossings.
        direction: `+1` only rising crossings (negative to non-negative), `-1` only falling
            ones, `0` both; "rising" along the solve, which for a backward solve runs
            against time.
        max_crossings: how many crossings a non-terminal event keeps per sample (the first
            ones); `Solution.event_count` still counts them all.

    Raises:
        InvalidInputError: `cond` not callable, `terminal` not a bool, `direction` not -1, 0
            or 1, or `max_crossings` not a positive int.
    """

    cond: EventFunction
    terminal: bool = True
    direction: int = 0
    max_crossings: int = 16

    def __post_init__(self) -> None:
        if not callable(self.cond):
            raise invalid("cond", "a function cond(t, y, args) -> [B]", self.cond)
        check_instance("terminal", self.terminal, bool, "True or False")
        if isinstance(self.direction, bool):
            raise invalid("direction", "-1, 0 or 1", self.direction)
        check_choice("direction", self.direction, (-1, 0, 1))
        check_int("max_crossings", self.max_crossings)

    @property
    def slots(self) -> int:
        """Crossings kept per sample: 1 for a terminal event, else `max_crossings`."""
        return 1 if self.terminal else self.max_crossings


__all__ = ["Event", "EventFunction"]
