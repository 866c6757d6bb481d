"""Backends: the same terms solved by peer libraries (torchdiffeq, torchsde), for cross-checks."""

from .torchdiffeq import TorchDiffEq
from .torchsde import TorchSDE, TorchSDEMethod

__all__ = ["TorchDiffEq", "TorchSDE", "TorchSDEMethod"]
