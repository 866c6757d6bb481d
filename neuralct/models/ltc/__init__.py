"""The liquid time-constant network: its model and term (`model`) and the fused semi-implicit
solver that only it uses (`fused`)."""

from .fused import AbstractLTCTerm, LTCFused
from .model import INIT_RANGES, LTC, LTCField, LTCTerm

__all__ = ["INIT_RANGES", "LTC", "AbstractLTCTerm", "LTCFused", "LTCField", "LTCTerm"]
