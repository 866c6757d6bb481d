"""The Bogacki-Shampine 3(2) pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .explicit_rk import AbstractExplicitRK
from .tableau import ButcherTableau

_B = (2 / 9, 1 / 3, 4 / 9, 0.0)
_B_EMBEDDED = (7 / 24, 1 / 4, 1 / 3, 1 / 8)

_TABLEAU = ButcherTableau(
    c=(0.0, 0.5, 0.75, 1.0),
    a=((), (0.5,), (0.0, 0.75), _B[:3]),
    b=_B,
    b_error=tuple(x - y for x, y in zip(_B, _B_EMBEDDED)),
)


@dataclass(frozen=True)
class Bosh3(AbstractExplicitRK):
    """Bogacki-Shampine 3(2) (Bogacki & Shampine, "A 3(2) pair of Runge-Kutta formulas",
    Appl. Math. Lett. 1989): third order, FSAL, second-order error estimate.
    Dense output: cubic Hermite (third order, as the method).
    """

    tableau: ClassVar[ButcherTableau] = _TABLEAU
    order: ClassVar[float] = 3
    error_order: ClassVar[int | None] = 2
