"""Paths: objects evaluated at per-sample times (dense solutions, controls, Brownian motion)."""

from .dense import DenseInterpolant

__all__ = ["DenseInterpolant"]
