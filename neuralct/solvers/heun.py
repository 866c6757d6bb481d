"""Heun's method (explicit trapezoid), order 2, with embedded Euler for step control."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .explicit_rk import AbstractExplicitRK
from .tableau import ButcherTableau

_TABLEAU = ButcherTableau(
    c=(0.0, 1.0),
    a=((), (1.0,)),
    b=(0.5, 0.5),
    b_error=(0.5 - 1.0, 0.5),
)


@dataclass(frozen=True)
class Heun(AbstractExplicitRK):
    """Heun's second-order method (Heun, 1900); its embedded Euler step gives a first-order
    error estimate, so it runs fixed-step or adaptive. Dense output: cubic Hermite.
    """

    tableau: ClassVar[ButcherTableau] = _TABLEAU
    order: ClassVar[float] = 2
    error_order: ClassVar[int | None] = 1
