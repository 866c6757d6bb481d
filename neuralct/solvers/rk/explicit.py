"""Explicit Runge-Kutta methods driven by a Butcher tableau, stepping every sample at once."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from ...paths.dense import Coefficients, StageCoefficients
from ...terms.base import AbstractDriftTerm, StageField, stage_times
from ..base import AbstractSolver, Carry, StepResult
from .butcher import ButcherTableau, Combination


def broadcast_step(h: Tensor, like: Tensor) -> Tensor:
    """`[B]` step sizes cast to `like`'s dtype and shaped `[B, 1, ...]` to scale `[B, *state]`."""
    if h.dtype != like.dtype:
        h = h.to(like.dtype)
    return h.unsqueeze(1) if like.ndim == 2 else h.reshape(h.shape + (1,) * (like.ndim - 1))


def combine_stages(ks: list[Tensor], plan: Combination | None) -> tuple[Tensor, float] | None:
    """$\\sum_i w_i k_i$ as `(sum / w_first, w_first)` (see `Combination`), or `None` when
    the row has no non-zero weight.

    A chain of scaled additions: elementwise, so a sample's result never depends on the
    batch it is in, and with as few tensor operations as possible, which is what dominates
    the cost of a step for neural ODEs with small states.
    """
    if plan is None:
        return None
    total = ks[plan.first]
    for n, (index, weight) in enumerate(plan.rest):
        total = torch.add(total, ks[index], alpha=weight) if n == 0 else total.add_(ks[index], alpha=weight)
    return total, plan.scale


def step_with(y0: Tensor, hs: Tensor, combination: tuple[Tensor, float] | None) -> Tensor:
    """$y_0 + h \\sum_i w_i k_i$ from the result of `combine_stages`."""
    if combination is None:
        return y0
    total, scale = combination
    return torch.addcmul(y0, hs, total, value=scale)


def hermite_coefficients(y0: Tensor, y1: Tensor, f0: Tensor, f1: Tensor, hs: Tensor) -> Tensor:
    """`[B, 3, *state]` coefficients of the cubic Hermite interpolant on a step.

    The cubic matches $y_0, y_1$ and the slopes $f_0, f_1$ at both ends (third order).
    `hs` is the step broadcast against the state (see `broadcast_step`).
    """
    delta = y1 - y0
    c1 = hs * f0
    c2 = 3 * delta - hs * (2 * f0 + f1)
    c3 = hs * (f0 + f1) - 2 * delta
    return torch.stack([c1, c2, c3], dim=1)


def _error(hs: Tensor, combination: tuple[Tensor, float]) -> Tensor:
    """Local error estimate $h \\sum_i e_i k_i$ from the result of `combine_stages`."""
    total, scale = combination
    return total * (hs * scale)


class AbstractExplicitRK(AbstractSolver):
    """An explicit Runge-Kutta method given by the class attribute `tableau`.

    Every step returns the slope at its end, which becomes the first stage of the next
    step (free for first-same-as-last tableaus, one evaluation otherwise that the next
    step then saves), so dense output always has both end slopes.
    """

    tableau: ClassVar[ButcherTableau]
    term_types: ClassVar[tuple[type, ...]] = (AbstractDriftTerm,)

    @property
    def dense_order(self) -> int:
        """Order of the dense output: 4 for the tableaus that define one, 3 for cubic Hermite."""
        return 4 if self.tableau.dense is not None else 3

    @property
    def interpolates_saves(self) -> bool:
        """Interpolate save times only when the dense output is within one order of the method."""
        return self.dense_order >= self.order - 1

    def init(self, term: AbstractDriftTerm, t0: Tensor, y0: Tensor, args: Any) -> tuple[Carry, int]:
        """Carry is `(f(t0, y0),)`; costs one evaluation."""
        return (term.vector_field(t0, y0, args),), 1

    @property
    def nodes(self) -> tuple[float, ...]:
        """The step fractions of the stage times `step_stages` takes, stage `i = 0, 1, ...`:
        the tableau's `c`, then 1 (the end point) for a tableau that is not first-same-as-last."""
        tab = self.tableau
        return tab.c if tab.fsal else tab.c + (1.0,)

    def step(
        self, term: AbstractDriftTerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """One RK step of signed size `h` `[B]` from `(t0 [B], y0 [B, *state])`."""
        return self.step_stages(term.stage_field(stage_times(t0, h, self.nodes), args), y0, h, carry, dense)

    def step_stages(self, field: StageField, y0: Tensor, h: Tensor, carry: Carry, dense: bool) -> StepResult:
        """`step` with the slopes from `field(i, y)` (see `AbstractDriftTerm.stage_field`) at
        the stage times `stage_times(t0, h, nodes)`. Stage 0's slope is `carry[0]`, so `field`
        is called for `i >= 1` only."""
        tab = self.tableau
        hs = broadcast_step(h, y0)
        ks = [carry[0]]
        yi = y0
        for i in range(1, tab.stages):
            yi = step_with(y0, hs, combine_stages(ks, tab.a_terms[i]))
            ks.append(field(i, yi))
        evals = tab.stages - 1
        if tab.fsal:
            y1, f1 = yi, ks[-1]
        else:
            y1 = step_with(y0, hs, combine_stages(ks, tab.b_terms))
            f1 = field(tab.stages, y1)
            evals += 1
        error = None if tab.b_error is None else _error(hs, combine_stages(ks, tab.b_error_terms))
        coeffs = self._dense(y0, y1, ks, f1, hs) if dense else None
        return StepResult(y1=y1, error=error, carry=(f1,), evals=evals, coeffs=coeffs)

    def _dense(self, y0: Tensor, y1: Tensor, ks: list[Tensor], f1: Tensor, hs: Tensor) -> Coefficients:
        """Dense-output coefficients: the tableau polynomial, kept as the stages until needed
        (see `StageCoefficients`), or the cubic Hermite `[B, 3, *state]`."""
        matrix = self.tableau.dense_matrix(y0.dtype, y0.device)
        if matrix is None:
            return hermite_coefficients(y0, y1, ks[0], f1, hs)
        return StageCoefficients(tuple(ks), hs, matrix)
