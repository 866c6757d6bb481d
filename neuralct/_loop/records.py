"""Step records: what the loop keeps of each attempted step for interpolation.

Three readers interpolate between a solve's steps: the save times passed by a window of
steps (`saves.py`), the dense output of `solve(..., dense=True)` and the parameter
quadrature of the continuous adjoint (`gradients/_adjoint_field.py`). They all read
`StepRecord`s; the last two read them stacked sample-first as `Steps`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ..paths.dense import Coefficients, DenseInterpolant, stack_coefficients


class StepRecord(NamedTuple):
    """One attempted step of every sample (a named tuple: cheap to make at every step, and
    unpacked field by field when records are stacked).

    Attributes:
        t0: `[B]` where the step started.
        t1: `[B]` where it ended (had it been accepted).
        y0: `[B, *state]` the state at `t0`.
        y1: `[B, *state]` the state the step proposed at `t1`.
        coeffs: the step's dense-output coefficients `[B, P, *state]`, or the stages they are
            formed from (see `neuralct.paths.dense`).
        accepted: `[B]` whether the step stands (a rejected step is never interpolated).
    """

    t0: Tensor
    t1: Tensor
    y0: Tensor
    y1: Tensor
    coeffs: Coefficients
    accepted: Tensor


@dataclass(frozen=True)
class Steps:
    """S step records stacked along dimension 1, sample first.

    Attributes:
        t0: `[B, S]` start times.
        t1: `[B, S]` end times.
        y0: `[B, S, *state]` states at the starts.
        coeffs: `[B, S, P, *state]` dense-output coefficients.
        accepted: `[B, S]` which steps stand.
    """

    t0: Tensor
    t1: Tensor
    y0: Tensor
    coeffs: Tensor
    accepted: Tensor

    @classmethod
    def stack(cls, records: Sequence[StepRecord]) -> Steps:
        """Stack `records` (at least one), oldest first."""
        t0, t1, y0, _, coeffs, accepted = zip(*records)
        t0, t1, y0, accepted = (torch.stack(parts, dim=1) for parts in (t0, t1, y0, accepted))
        return cls(t0=t0, t1=t1, y0=y0, coeffs=stack_coefficients(coeffs, dim=1), accepted=accepted)

    def interpolant(self, direction: Tensor, stop: Tensor | None = None) -> DenseInterpolant:
        """The dense output over the accepted steps, for samples running in `direction` `[B]`,
        each up to `stop` `[B]` when given (where a terminal event stopped it inside a step)."""
        return DenseInterpolant(self.t0, self.t1, self.y0, self.coeffs, self.accepted, direction, stop=stop)
