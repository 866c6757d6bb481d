"""Solvers: one-step methods for each kind of term."""

from .base import AbstractSolver, StepResult
from .bosh3 import Bosh3
from .dopri5 import Dopri5
from .dopri8 import Dopri8
from .euler import Euler
from .euler_maruyama import EulerMaruyama
from .exact_linear import GBT, ZOH, AbstractLinearSolver
from .explicit_rk import AbstractExplicitRK
from .heun import Heun
from .implicit_euler import ImplicitEuler
from .method_of_steps import MethodOfSteps
from .midpoint import Midpoint
from .milstein import Milstein
from .ralston import Ralston
from .reversible_heun import ReversibleHeun
from .rk4 import RK4
from .sde_base import AbstractSDESolver
from .stochastic_heun import StochasticHeun
from .tableau import ButcherTableau
from .tsit5 import Tsit5

__all__ = [
    "AbstractExplicitRK",
    "AbstractLinearSolver",
    "AbstractSDESolver",
    "AbstractSolver",
    "Bosh3",
    "ButcherTableau",
    "Dopri5",
    "Dopri8",
    "Euler",
    "GBT",
    "EulerMaruyama",
    "Heun",
    "ImplicitEuler",
    "MethodOfSteps",
    "Midpoint",
    "Milstein",
    "RK4",
    "Ralston",
    "ReversibleHeun",
    "StepResult",
    "StochasticHeun",
    "Tsit5",
    "ZOH",
]
