"""The implicit (backward) Euler method with a per-sample Newton iteration, order 1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .esdirk import ESDIRKTableau
from .implicit import AbstractImplicitRK

# Implicit Euler as an ESDIRK with an explicit first stage: the first slope, f(t0, y0), costs nothing
# (it is the previous step's last) and serves the error estimate, the trapezoidal rule's difference
# h/2 (f1 - f0), filtered through (I - hJ)^-1.
_TABLEAU = ESDIRKTableau(
    c=(0.0, 1.0), a=((), (0.0,)), gamma=1.0, b=(0.0, 1.0), b_error=(-0.5, 0.5), filter_error=True, extrapolate=False
)


@dataclass(frozen=True)
class ImplicitEuler(AbstractImplicitRK):
    """Implicit Euler, $y_1 = y_0 + h f(t_1, y_1)$: order 1, L-stable, for stiff problems.

    Each sample solves its own nonlinear equation by the shared per-sample Newton machinery of
    [`AbstractImplicitRK`][neuralct.solvers.rk.implicit.AbstractImplicitRK] (chord iteration on a
    batched LU factorisation of $I - h\\,\\partial_y f$, the Jacobian reused across steps while
    Newton converges quickly), starting from $y_0$. A sample whose iteration
    fails is reported in `StepResult.failed`: an adaptive controller rejects and shrinks the step,
    `ConstantStep` ends the sample with status `NEWTON_FAILED`.

    The error estimate (error order 1) is the difference to the trapezoidal rule,
    $\\tfrac{h}{2}(f_1 - f_0)$, an $O(h^2)$ estimate of the local error $-\\tfrac{h^2}{2}y''$,
    filtered through $(I - hJ)^{-1}$ so that stiff, quickly decaying components do not force tiny
    steps (Hairer & Wanner, "Solving Ordinary Differential Equations II", 2nd ed., 1996,
    section IV.8; Shampine, "Implementation of implicit formulas for the solution of ODEs",
    SIAM J. Sci. Stat. Comput. 1, 1980). Dense output is the cubic Hermite interpolant; adaptive
    solves step onto save times, since a cubic adds little to a first-order step.
    """

    tableau: ClassVar[ESDIRKTableau] = _TABLEAU
    order: ClassVar[float] = 1
    error_order: ClassVar[int | None] = 1

    @property
    def interpolates_saves(self) -> bool:
        """Step onto save times: the cubic interpolant of a first-order step adds little."""
        return False
