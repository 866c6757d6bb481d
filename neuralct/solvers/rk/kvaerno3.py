"""Kvaerno's ESDIRK 3(2): third order, L-stable, stiffly accurate, four stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .esdirk import ESDIRKTableau
from .implicit import AbstractImplicitRK

# Every coefficient follows from gamma, as in the paper (Kvaerno 2004, table for ESDIRK 3/2).
_G = 0.43586652150
_A31 = (-4 * _G**2 + 6 * _G - 1) / (4 * _G)
_A32 = (-2 * _G + 1) / (4 * _G)
_A41 = (6 * _G - 1) / (12 * _G)
_A42 = -1 / ((24 * _G - 12) * _G)
_A43 = (-6 * _G**2 + 6 * _G - 1) / (6 * _G - 3)

_TABLEAU = ESDIRKTableau(
    c=(0.0, 2 * _G, 1.0, 1.0),
    a=((), (_G,), (_A31, _A32), (_A41, _A42, _A43)),
    gamma=_G,
    b=(_A41, _A42, _A43, _G),
    # The embedded method is stage 2, itself stiffly accurate (c = 1).
    b_error=(_A41 - _A31, _A42 - _A32, _A43 - _G, _G),
)


@dataclass(frozen=True)
class Kvaerno3(AbstractImplicitRK):
    """Kvaerno's ESDIRK 3(2) (Kvaerno, "Singly diagonally implicit Runge-Kutta methods with an
    explicit first stage", BIT 44, 2004): third order, L-stable and stiffly accurate, with a
    second-order L-stable embedded estimate; three implicit stages share one factorisation.
    Dense output: cubic Hermite through both ends and their slopes (third order, as the method).

    For stiff problems at moderate tolerances (rtol about 1e-3 to 1e-5). See
    [`AbstractImplicitRK`][neuralct.solvers.rk.implicit.AbstractImplicitRK] for the Newton options.
    """

    tableau: ClassVar[ESDIRKTableau] = _TABLEAU
    order: ClassVar[float] = 3
    error_order: ClassVar[int | None] = 2
