"""Ralston's second-order method, minimal truncation-error bound (Ralston, 1962)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .explicit_rk import AbstractExplicitRK
from .tableau import ButcherTableau

_TABLEAU = ButcherTableau(
    c=(0.0, 2 / 3),
    a=((), (2 / 3,)),
    b=(0.25, 0.75),
)


@dataclass(frozen=True)
class Ralston(AbstractExplicitRK):
    """Ralston's second-order method, minimal truncation-error bound (Ralston, 1962).

    Fixed-step only (no embedded error estimate): use it with `nct.ConstantStep(dt)`.
    Dense output is the cubic Hermite interpolant through both ends and their slopes.
    """

    tableau: ClassVar[ButcherTableau] = _TABLEAU
    order: ClassVar[float] = 2
