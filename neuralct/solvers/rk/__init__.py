"""Runge-Kutta methods: the Butcher tableau, explicit methods driven by one, implicit Euler."""

from .butcher import ButcherTableau
from .dopri5 import Dopri5
from .dopri8 import Dopri8
from .explicit import AbstractExplicitRK
from .implicit_euler import ImplicitEuler
from .tableaus import RK4, Bosh3, Euler, Heun, Midpoint, Ralston
from .tsit5 import Tsit5

__all__ = [
    "RK4",
    "AbstractExplicitRK",
    "Bosh3",
    "ButcherTableau",
    "Dopri5",
    "Dopri8",
    "Euler",
    "Heun",
    "ImplicitEuler",
    "Midpoint",
    "Ralston",
    "Tsit5",
]
