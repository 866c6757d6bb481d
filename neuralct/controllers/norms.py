"""Norms for error control. Each reduces over the non-batch dimensions only, so that one
sample's error never affects another's step size."""

from __future__ import annotations

import torch
from torch import Tensor


def rms_norm(x: Tensor) -> Tensor:
    """Root mean square over non-batch dims: `[B, *state]` -> `[B]`."""
    flat = x if x.ndim == 2 else x.flatten(1)
    return torch.linalg.vector_norm(flat, dim=1) * flat.shape[1] ** -0.5


def max_norm(x: Tensor) -> Tensor:
    """Largest absolute entry over non-batch dims: `[B, *state]` -> `[B]`."""
    return x.abs().flatten(1).amax(dim=1)


def scaled_error(error: Tensor, y0: Tensor, y1: Tensor, rtol: float, atol: float) -> Tensor:
    """The error measured in units of the tolerance, elementwise: $e / (a + r \\max(|y_0|, |y_1|))$."""
    return error / torch.maximum(y0.abs(), y1.abs()).mul_(rtol).add_(atol)
