"""Gradient strategies for `solve`."""

from .backprop import Backprop
from .base import AbstractGradient

__all__ = ["AbstractGradient", "Backprop"]
