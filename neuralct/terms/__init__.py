"""Terms: vector fields together with their controls."""

from .base import AbstractDriftTerm, AbstractTerm
from .control import ControlTerm
from .ode import ODETerm

__all__ = ["AbstractDriftTerm", "AbstractTerm", "ControlTerm", "ODETerm"]
