"""Euler's method, order 1 (Euler, 1768)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .explicit_rk import AbstractExplicitRK
from .tableau import ButcherTableau

_TABLEAU = ButcherTableau(
    c=(0.0,),
    a=((),),
    b=(1.0,),
)


@dataclass(frozen=True)
class Euler(AbstractExplicitRK):
    """Euler's method, order 1 (Euler, 1768).

    Fixed-step only (no embedded error estimate): use it with `nct.ConstantStep(dt)`.
    Dense output is the cubic Hermite interpolant through both ends and their slopes.
    """

    tableau: ClassVar[ButcherTableau] = _TABLEAU
    order: ClassVar[float] = 1
