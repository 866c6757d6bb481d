"""The explicit midpoint method, order 2 (Runge, 1895)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .explicit_rk import AbstractExplicitRK
from .tableau import ButcherTableau

_TABLEAU = ButcherTableau(
    c=(0.0, 0.5),
    a=((), (0.5,)),
    b=(0.0, 1.0),
)


@dataclass(frozen=True)
class Midpoint(AbstractExplicitRK):
    """The explicit midpoint method, order 2 (Runge, 1895).

    Fixed-step only (no embedded error estimate): use it with `nct.ConstantStep(dt)`.
    Dense output is the cubic Hermite interpolant through both ends and their slopes.
    """

    tableau: ClassVar[ButcherTableau] = _TABLEAU
    order: ClassVar[float] = 2
