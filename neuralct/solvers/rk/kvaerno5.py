"""Kvaerno's ESDIRK 5(4): fifth order, L-stable, stiffly accurate, seven stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .esdirk import ESDIRKTableau
from .implicit import AbstractImplicitRK

_G = 0.26
_ROW6 = (0.13855640231268224, 0.0, -0.04245337201752043, 0.02446657898003141, 0.61943039072480676)
_ROW7 = (
    0.13659751177640291,
    0.0,
    -0.05496908796538376,
    -0.04118626728321046,
    0.62993304899016403,
    0.06962479448202728,
)

_TABLEAU = ESDIRKTableau(
    c=(0.0, 0.52, 1.230333209967908, 0.8957659843500759, 0.43639360985864756, 1.0, 1.0),
    a=(
        (),
        (_G,),
        (0.13, 0.84033320996790809),
        (0.22371961478320505, 0.47675532319799699, -0.06470895363112615),
        (0.16648564323248321, 0.10450018841591720, 0.03631482272098715, -0.13090704451073998),
        _ROW6,
        _ROW7,
    ),
    gamma=_G,
    b=_ROW7 + (_G,),
    # The embedded method is stage 5, itself stiffly accurate (c = 1).
    b_error=tuple(x - y for x, y in zip(_ROW7 + (_G,), _ROW6 + (_G, 0.0))),
)


@dataclass(frozen=True)
class Kvaerno5(AbstractImplicitRK):
    """Kvaerno's ESDIRK 5(4) (Kvaerno, "Singly diagonally implicit Runge-Kutta methods with an
    explicit first stage", BIT 44, 2004): fifth order, L-stable and stiffly accurate, with a
    fourth-order embedded estimate; six implicit stages share one factorisation. Dense output: cubic
    Hermite (third order), so adaptive solves step onto save times rather than interpolate them.

    For stiff problems at tight tolerances (rtol 1e-6 and below). Some stages lie past the step's
    end ($c_2 = 1.23$), so the field is evaluated slightly beyond the last save time. See
    [`AbstractImplicitRK`][neuralct.solvers.rk.implicit.AbstractImplicitRK] for the Newton options.
    """

    tableau: ClassVar[ESDIRKTableau] = _TABLEAU
    order: ClassVar[float] = 5
    error_order: ClassVar[int | None] = 4
