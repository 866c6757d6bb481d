"""Solvers for SDEs, a drift plus a noise term (`SDETerm`): fixed-step, and adaptive with an error estimate."""

from .base import AbstractSDESolver
from .euler_maruyama import EulerMaruyama
from .milstein import Milstein
from .reversible_heun import ReversibleHeun
from .sra1 import SRA1
from .step_doubling import StepDoubling
from .stochastic_heun import StochasticHeun

__all__ = ["AbstractSDESolver", "EulerMaruyama", "Milstein", "ReversibleHeun", "SRA1", "StepDoubling", "StochasticHeun"]
