"""Argument checks and the least-squares rate fit that the stability instruments share."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_number, describe
from ..errors import InvalidInputError


def check_state(z0: Tensor) -> tuple[int, int]:
    """`(B, N)` of a finite floating `[B, N]` tensor of initial states; raise naming `z0` otherwise."""
    if not isinstance(z0, Tensor) or z0.ndim != 2 or not z0.is_floating_point():
        raise InvalidInputError(f"`z0` must be a floating tensor [B, N] (one trajectory per row); got {describe(z0)}")
    if not bool(torch.isfinite(z0).all()):
        raise InvalidInputError("`z0` must be finite")
    return z0.shape[0], z0.shape[1]


def check_dt(dt: float) -> None:
    """Raise unless `dt` is a positive finite time per step."""
    check_number("dt", dt, 0.0, open_low=True)


def slopes(x: Tensor, y: Tensor) -> Tensor:
    """`[R]` least-squares slopes of the rows of `y` `[R, L]` against `x` `[L]`."""
    centred = x - x.mean()
    return ((y - y.mean(dim=-1, keepdim=True)) * centred).sum(dim=-1) / (centred**2).sum()
