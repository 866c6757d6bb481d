"""Gradient strategies for `solve`."""

from .backprop import Backprop
from .backsolve import Backsolve
from .base import AbstractGradient

__all__ = ["AbstractGradient", "Backprop", "Backsolve"]
