"""Terms: vector fields together with their controls."""

from .base import AbstractDriftTerm, AbstractTerm
from .control import ControlTerm
from .delay import DelayTerm
from .linear import LinearTerm
from .multi import MultiTerm
from .noise import NoiseTerm, NoiseType, SDEType
from .ode import ODETerm

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
    "SDEType",
]
