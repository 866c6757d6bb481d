"""Fixed-step solvers for SDEs: a drift plus a noise term (`SDETerm`)."""

from .base import AbstractSDESolver
from .euler_maruyama import EulerMaruyama
from .milstein import Milstein
from .reversible_heun import ReversibleHeun
from .stochastic_heun import StochasticHeun

__all__ = ["AbstractSDESolver", "EulerMaruyama", "Milstein", "ReversibleHeun", "StochasticHeun"]
