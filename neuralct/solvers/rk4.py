"""The classic fourth-order Runge-Kutta method (Kutta, 1901)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .explicit_rk import AbstractExplicitRK
from .tableau import ButcherTableau

_TABLEAU = ButcherTableau(
    c=(0.0, 0.5, 0.5, 1.0),
    a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
)


@dataclass(frozen=True)
class RK4(AbstractExplicitRK):
    """The classic fourth-order Runge-Kutta method (Kutta, 1901).

    Fixed-step only (no embedded error estimate): use it with `nct.ConstantStep(dt)`.
    Dense output is the cubic Hermite interpolant through both ends and their slopes.
    """

    tableau: ClassVar[ButcherTableau] = _TABLEAU
    order: ClassVar[float] = 4
