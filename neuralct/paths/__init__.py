"""Paths: objects evaluated at per-sample times (dense solutions, controls, Brownian motion)."""

from .brownian import BrownianPath, LevyArea
from .brownian_grid import BrownianGrid
from .brownian_tree import BrownianTree
from .dense import DenseInterpolant
from .interpolation import AbstractPiecewisePath, CubicPath, LinearPath, RectilinearPath
from .piecewise_constant import PiecewiseConstantPath

__all__ = [
    "AbstractPiecewisePath",
    "BrownianGrid",
    "BrownianPath",
    "BrownianTree",
    "CubicPath",
    "DenseInterpolant",
    "LevyArea",
    "LinearPath",
    "RectilinearPath",
]
