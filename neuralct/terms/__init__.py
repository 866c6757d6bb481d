"""Terms: vector fields together with their controls."""

from .base import AbstractDriftTerm, AbstractTerm
from .control import ControlTerm
from .delay import DelayTerm
from .linear import LinearTerm
from .noise import NoiseTerm, NoiseType, SDEType
from .ode import ODETerm
from .sde import MultiTerm, SDETerm
from .split import SplitTerm

__all__ = [
    "AbstractDriftTerm",
    "AbstractTerm",
    "ControlTerm",
    "DelayTerm",
    "LinearTerm",
    "MultiTerm",
    "NoiseTerm",
    "NoiseType",
    "ODETerm",
    "SDETerm",
    "SDEType",
    "SplitTerm",
]
