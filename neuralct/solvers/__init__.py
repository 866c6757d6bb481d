"""Solvers: one-step methods for each kind of term, grouped by family.

- `rk`: Runge-Kutta methods (the Butcher tableau, explicit methods, implicit Euler, the ESDIRK
  methods Kvaerno3/Kvaerno5, the IMEX pair KenCarp4 and the Radau IIA method Radau5);
- `sde`: SDE methods, fixed-step and adaptive;
- `dde`: the method of steps for delay equations;
- `linear`: zero-order hold and the bilinear transform for `LinearTerm`.
"""

from .base import AbstractSolver, StepResult
from .dde import MethodOfSteps
from .linear import GBT, ZOH, AbstractLinearSolver
from .rk import (
    RK4,
    AbstractExplicitRK,
    AbstractImplicitRK,
    Bosh3,
    ButcherTableau,
    Dopri5,
    Dopri8,
    Euler,
    Heun,
    ImplicitEuler,
    KenCarp4,
    Kvaerno3,
    Kvaerno5,
    Radau5,
    Midpoint,
    Ralston,
    Tsit5,
)
from .sde import SRA1, AbstractSDESolver, EulerMaruyama, Milstein, ReversibleHeun, StepDoubling, StochasticHeun

__all__ = [
    "AbstractExplicitRK",
    "AbstractImplicitRK",
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
    "KenCarp4",
    "Kvaerno3",
    "Kvaerno5",
    "Radau5",
    "MethodOfSteps",
    "Midpoint",
    "Milstein",
    "RK4",
    "Ralston",
    "ReversibleHeun",
    "SRA1",
    "StepDoubling",
    "StepResult",
    "StochasticHeun",
    "Tsit5",
    "ZOH",
]
