"""Step-size controllers."""

from .base import AbstractController, ControllerStart, Decision
from .constant import ConstantStep
from .knots import KnotToKnot
from .norms import max_norm, rms_norm
from .pid import PIDController

__all__ = [
    "AbstractController",
    "ConstantStep",
    "ControllerStart",
    "Decision",
    "KnotToKnot",
    "PIDController",
    "max_norm",
    "rms_norm",
]
