"""The Dormand-Prince 5(4) pair with Shampine's dense output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .butcher import ButcherTableau, quartic_dense_from_midpoint
from .explicit import AbstractExplicitRK

_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B_EMBEDDED = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
# Shampine's (1986) continuous extension evaluated at theta = 1/2.
_B_MID = (
    6025192743 / 30085553152 / 2,
    0.0,
    51252292925 / 65400821598 / 2,
    -2691868925 / 45128329728 / 2,
    187940372067 / 1594534317056 / 2,
    -1776094331 / 19743644256 / 2,
    11237099 / 235043384 / 2,
)

_TABLEAU = ButcherTableau(
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    a=(
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        _B[:6],
    ),
    b=_B,
    b_error=tuple(x - y for x, y in zip(_B, _B_EMBEDDED)),
    dense=quartic_dense_from_midpoint(_B, _B_MID),
)


@dataclass(frozen=True)
class Dopri5(AbstractExplicitRK):
    """Dormand-Prince 5(4) (Dormand & Prince, J. Comput. Appl. Math. 6, 1980): fifth order,
    FSAL, fourth-order error estimate; dense output by the quartic through Shampine's
    midpoint value (Shampine, Math. Comp. 46, 1986), fourth order.
    """

    tableau: ClassVar[ButcherTableau] = _TABLEAU
    order: ClassVar[float] = 5
    error_order: ClassVar[int | None] = 4
