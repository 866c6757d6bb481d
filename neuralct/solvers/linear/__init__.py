"""Solvers for `LinearTerm`: zero-order hold and the generalized bilinear transform.

The discretized matrices themselves, for layers that run the recurrence directly, are in
`neuralct.solvers.linear.discretize` (`zoh`, `gbt`).
"""

from .methods import GBT, ZOH, AbstractLinearSolver

__all__ = ["GBT", "ZOH", "AbstractLinearSolver"]
