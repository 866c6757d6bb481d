"""Explicit Runge-Kutta methods that are a Butcher tableau and nothing more.

Each class declares its tableau and order; the stepping, error estimate and dense output
(the cubic Hermite interpolant through both ends and their slopes, third order) are those of
`AbstractExplicitRK`. A method without an embedded error estimate (`error_order` `None`) is
fixed-step only: use it with `nct.ConstantStep(dt)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .butcher import ButcherTableau
from .explicit import AbstractExplicitRK


@dataclass(frozen=True)
class Euler(AbstractExplicitRK):
    """Euler's method, order 1 (Euler, 1768). Fixed-step only."""

    tableau: ClassVar[ButcherTableau] = ButcherTableau(c=(0.0,), a=((),), b=(1.0,))
    order: ClassVar[float] = 1


@dataclass(frozen=True)
class Midpoint(AbstractExplicitRK):
    """The explicit midpoint method, order 2 (Runge, 1895). Fixed-step only."""

    tableau: ClassVar[ButcherTableau] = ButcherTableau(c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0))
    order: ClassVar[float] = 2


@dataclass(frozen=True)
class Heun(AbstractExplicitRK):
    """Heun's second-order method (explicit trapezoid; Heun, 1900). Its embedded Euler step
    gives a first-order error estimate, so it runs fixed-step or adaptive.
    """

    tableau: ClassVar[ButcherTableau] = ButcherTableau(
        c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5), b_error=(0.5 - 1.0, 0.5)
    )
    order: ClassVar[float] = 2
    error_order: ClassVar[int | None] = 1


@dataclass(frozen=True)
class Ralston(AbstractExplicitRK):
    """Ralston's second-order method, minimal truncation-error bound (Ralston, 1962).
    Fixed-step only.
    """

    tableau: ClassVar[ButcherTableau] = ButcherTableau(c=(0.0, 2 / 3), a=((), (2 / 3,)), b=(0.25, 0.75))
    order: ClassVar[float] = 2


@dataclass(frozen=True)
class RK4(AbstractExplicitRK):
    """The classic fourth-order Runge-Kutta method (Kutta, 1901). Fixed-step only."""

    tableau: ClassVar[ButcherTableau] = ButcherTableau(
        c=(0.0, 0.5, 0.5, 1.0),
        a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
        b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    )
    order: ClassVar[float] = 4


_BOSH3_B = (2 / 9, 1 / 3, 4 / 9, 0.0)
_BOSH3_B_EMBEDDED = (7 / 24, 1 / 4, 1 / 3, 1 / 8)


@dataclass(frozen=True)
class Bosh3(AbstractExplicitRK):
    """Bogacki-Shampine 3(2) (Bogacki & Shampine, "A 3(2) pair of Runge-Kutta formulas",
    Appl. Math. Lett. 1989): third order, FSAL, second-order error estimate.
    Dense output: cubic Hermite (third order, as the method).
    """

    tableau: ClassVar[ButcherTableau] = ButcherTableau(
        c=(0.0, 0.5, 0.75, 1.0),
        a=((), (0.5,), (0.0, 0.75), _BOSH3_B[:3]),
        b=_BOSH3_B,
        b_error=tuple(x - y for x, y in zip(_BOSH3_B, _BOSH3_B_EMBEDDED)),
    )
    order: ClassVar[float] = 3
    error_order: ClassVar[int | None] = 2
