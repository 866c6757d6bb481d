"""Gradient strategies for `solve`."""

from .backprop import Backprop
from .backsolve import Backsolve
from .base import AbstractGradient
from .reversible import ReversibleAdjoint
from .stochastic import StochasticAdjoint

__all__ = ["AbstractGradient", "Backprop", "Backsolve", "ReversibleAdjoint", "StochasticAdjoint"]
