"""Runge-Kutta methods: the Butcher tableau, explicit methods driven by one, implicit (ESDIRK and
IMEX) methods and Radau IIA with per-sample Newton."""

from .butcher import ButcherTableau
from .dopri5 import Dopri5
from .dopri8 import Dopri8
from .explicit import AbstractExplicitRK
from .esdirk import ESDIRKTableau
from .implicit import AbstractImplicitRK
from .implicit_euler import ImplicitEuler
from .kencarp4 import KenCarp4
from .kvaerno3 import Kvaerno3
from .kvaerno5 import Kvaerno5
from .radau import Radau5
from .tableaus import RK4, Bosh3, Euler, Heun, Midpoint, Ralston
from .tsit5 import Tsit5

__all__ = [
    "RK4",
    "AbstractExplicitRK",
    "AbstractImplicitRK",
    "Bosh3",
    "ButcherTableau",
    "Dopri5",
    "Dopri8",
    "ESDIRKTableau",
    "Euler",
    "Heun",
    "ImplicitEuler",
    "KenCarp4",
    "Kvaerno3",
    "Kvaerno5",
    "Midpoint",
    "Radau5",
    "Ralston",
    "Tsit5",
]
