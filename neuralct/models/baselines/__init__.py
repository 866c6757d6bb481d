"""Irregular-series baselines: GRU-D, ODE-RNN and a GRU given the time gaps, all jump models."""

from .gru_d import GRUD
from .gru_dt import GRUDelta
from .ode_rnn import ODERNN, MLPField

__all__ = ["GRUD", "GRUDelta", "MLPField", "ODERNN"]
