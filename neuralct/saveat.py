"""`SaveAt`: which states a solve writes to `Solution.ys`."""

from __future__ import annotations

from dataclasses import dataclass

from ._checks import check_instance
from .errors import InvalidInputError


@dataclass(frozen=True)
class SaveAt:
    """What a solve saves; the `t` of `solve` gives the span (its first time, and its last, or
    the last within `lengths`) whatever is saved.

    - `SaveAt()`: at every time of `t` (as without `saveat`): `ys` `[B, K, *state]`.
    - `SaveAt(ends=True)`: at the start and the end only, `ys` `[B, 2, *state]`; the steps do
      not stop at the times in between. With `solve(..., dense=True)` this is a dense
      solution without a save grid.
    - `SaveAt(steps=True)`: at the start and after every accepted step (diffrax's
      `SaveAt(steps=True)`): `ts` `[B, N]` and `ys` `[B, N, *state]` with N one more than the
      most steps any sample accepted; a sample's outputs past its own last step repeat that
      last one, and `Solution.mask` `[B, N]` says which are its steps.

    Args:
        steps: save after every accepted step.
        ends: save at the start and the end only.

    Raises:
        InvalidInputError: a flag that is not a bool, or both flags set.
    """

    steps: bool = False
    ends: bool = False

    def __post_init__(self) -> None:
        check_instance("steps", self.steps, bool, "True or False")
        check_instance("ends", self.ends, bool, "True or False")
        if self.steps and self.ends:
            raise InvalidInputError(
                "`SaveAt` takes one of `steps=True` and `ends=True`; got both (every step already includes the ends)"
            )

    @property
    def spans_only(self) -> bool:
        """Whether `t` only gives the span: the steps stop at its first and last times alone."""
        return self.steps or self.ends


__all__ = ["SaveAt"]
