"""Solvers: one-step methods for each kind of term."""

from .base import AbstractSolver, StepResult
from .bosh3 import Bosh3
from .dopri5 import Dopri5
from .dopri8 import Dopri8
from .euler import Euler
from .explicit_rk import AbstractExplicitRK
from .heun import Heun
from .implicit_euler import ImplicitEuler
from .midpoint import Midpoint
from .ralston import Ralston
from .rk4 import RK4
from .tableau import ButcherTableau
from .tsit5 import Tsit5

__all__ = [
    "AbstractExplicitRK",
    "AbstractSolver",
    "Bosh3",
    "ButcherTableau",
    "Dopri5",
    "Dopri8",
    "Euler",
    "Heun",
    "ImplicitEuler",
    "Midpoint",
    "RK4",
    "Ralston",
    "StepResult",
    "Tsit5",
]
