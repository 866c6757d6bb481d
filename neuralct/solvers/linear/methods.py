"""Discretization solvers for `LinearTerm`: zero-order hold (exact) and the generalized bilinear transform.

Both advance $\\dot x = A x + B u(t)$ over a step of size $h$ with the input held at
$\\hat u = u(t_0 + h/2)$, the path at the step's **midpoint**:

$$x_1 = \\bar A(h)\\, x_0 + \\bar B(h)\\, \\hat u,$$

with $(\\bar A, \\bar B)$ from `neuralct.solvers.linear.discretize` (per sample and per feature). Reading
the input at the midpoint makes the result independent of which side of a knot a path takes:
the step loop lands on the path's knots (its `jump_times`), so for a piecewise-constant input
every step lies inside one piece and the midpoint reads that piece's value. For a smooth input
the midpoint is the second-order choice.

Both are fixed-step methods (no error estimate): use them with `nct.ConstantStep(dt)`. A `dt`
larger than the knot spacing is fine: steps are shortened to land on every knot and save time,
so `ConstantStep(float("inf"))`-like large steps go exactly knot to knot. Steps of either sign work
(a backward solve discretizes $-A, -B$ over $|h|$).

Dense output is the cubic Hermite interpolant through both ends with the slopes
$A x_i + B \\hat u$ of the held-input system.

Reference: Gu et al., "Combining Recurrent, Convolutional, and Continuous-time Models with
Linear State-Space Layers", NeurIPS 2021 (the GBT and its limits, section 2 and appendix C).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..._checks import check_number
from ...terms.linear import LinearTerm
from ..base import AbstractSolver, Carry, StepResult
from ..rk.explicit import broadcast_step, hermite_coefficients
from .discretize import gbt, zoh


class AbstractLinearSolver(AbstractSolver):
    """A one-step method for `LinearTerm` given by a discretization $(A, B, \\Delta) \\mapsto (\\bar A, \\bar B)$."""

    term_types: ClassVar[tuple[type, ...]] = (LinearTerm,)

    @property
    def interpolates_saves(self) -> bool:
        """Step onto save times: the recurrence is exact at step ends, its interpolant is not."""
        return False

    @property
    def reads_step_end(self) -> bool:
        """`False`: the input is read at the step's midpoint, so steps land exactly on jumps."""
        return False

    @abc.abstractmethod
    def discretize(self, a: Tensor, b: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        """$(\\bar A, \\bar B)$ `([..., N, N], [..., N])` for `a` `[..., N, N]`, `b` `[..., N]`, `dt` `[...]` > 0."""

    def init(self, term: LinearTerm, t0: Tensor, y0: Tensor, args: Any) -> tuple[Carry, int]:
        """No carry: every step reads the input afresh; no evaluations."""
        return (), 0

    def step(
        self, term: LinearTerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """Advance `y0` `[B, H, N]` from `t0` `[B]` by the signed steps `h` `[B]`; costs one input evaluation."""
        u = term.input(t0 + h / 2).to(y0.dtype)
        term.check_state(y0, u)
        a_bar, b_bar = self._matrices(term, h.to(y0.dtype))
        y1 = (a_bar @ y0.unsqueeze(-1)).squeeze(-1) + b_bar * u.unsqueeze(-1)
        # A zero step (a finished sample) is the identity; its discretization was computed at dt = 1.
        y1 = torch.where((h == 0).reshape(-1, 1, 1), y0, y1)
        coeffs = None
        if dense:
            hs = broadcast_step(h, y0)
            coeffs = hermite_coefficients(y0, y1, term.drift(y0, u), term.drift(y1, u), hs)
        return StepResult(y1=y1, error=None, carry=(), evals=1, coeffs=coeffs)

    def _matrices(self, term: LinearTerm, h: Tensor) -> tuple[Tensor, Tensor]:
        """`(A_bar [B or 1, H or 1, N, N], B_bar [B or 1, H or 1, N])` for the signed steps `h` `[B]`.

        A step $h < 0$ is the discretization of $(-A, -B)$ over $|h|$. When every sample takes the
        same step (a shared grid), the matrices are computed once for the whole batch.
        """
        if bool((h == h[:1]).all()):
            h = h[:1]
        sign = torch.where(h < 0, -1.0, 1.0).to(h.dtype)
        dt = torch.where(h == 0, torch.ones_like(h), h.abs())
        a = sign.reshape(-1, 1, 1, 1) * term.a
        b = sign.reshape(-1, 1, 1) * term.b
        a_bar, b_bar = self.discretize(a, b, dt.reshape(-1, 1))
        return a_bar, b_bar


@dataclass(frozen=True)
class ZOH(AbstractLinearSolver):
    """Zero-order-hold discretization of a `LinearTerm`, exact for input held constant over each step.

    $x_1 = e^{hA} x_0 + \\int_0^h e^{sA} ds\\, B\\, \\hat u$ with $\\hat u$ the input at the step's midpoint.

    With a `PiecewiseConstantPath` input (the steps land on its knots) the solution is exact at
    every step end whatever the step size, and equals the LSSL recurrence with zero-order-hold
    matrices on the path's knots. For a smooth input, holding $\\hat u = u(t_0 + h/2)$ is the
    midpoint rule on the variation-of-constants integral: declared `order` 2.

    The matrices come from one matrix exponential per sample and feature
    (`neuralct.solvers.linear.discretize.zoh`); gradients reach `a` and `b` through `torch.linalg.matrix_exp`.
    """

    order: ClassVar[float] = 2

    def discretize(self, a: Tensor, b: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        """`neuralct.solvers.linear.discretize.zoh`."""
        return zoh(a, b, dt)


@dataclass(frozen=True)
class GBT(AbstractLinearSolver):
    """Generalized bilinear transform for a `LinearTerm`: forward Euler, backward Euler or bilinear by `alpha`.

    $x_1 = (I - \\alpha h A)^{-1}\\big((I + (1 - \\alpha) h A) x_0 + h B \\hat u\\big)$ with $\\hat u$ the
    input at the step's midpoint.

    `alpha=0` is forward Euler, `alpha=1` backward Euler and `alpha=0.5` the bilinear (Tustin,
    trapezoid) rule, LSSL's default, which keeps every stable system stable. `order` is 2 for
    `alpha=0.5` and 1 otherwise.

    Args:
        alpha: the GBT parameter $\\alpha \\in [0, 1]$.

    Raises:
        InvalidInputError: `alpha` outside [0, 1] or not a number.
    """

    alpha: float = 0.5

    def __post_init__(self) -> None:
        check_number("alpha", self.alpha, 0.0, 1.0)

    @property
    def order(self) -> float:  # type: ignore[override]
        """2 for the bilinear rule (`alpha=0.5`), 1 otherwise."""
        return 2.0 if self.alpha == 0.5 else 1.0

    def discretize(self, a: Tensor, b: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
        """`neuralct.solvers.linear.discretize.gbt` with this `alpha`."""
        return gbt(a, b, dt, float(self.alpha))


__all__ = ["GBT", "ZOH", "AbstractLinearSolver"]
