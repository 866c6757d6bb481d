"""What the convolutional SSM layers (HOPE, the diagonal SSM) share: their log-steps and input check."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import InvalidInputError


def register_log_dt(module: nn.Module, channels: int, dt_min: float, dt_max: float, learn: bool) -> None:
    """Give `module` a `log_dt` `[channels]` drawn log-uniform in `[dt_min, dt_max]`.

    Args:
        module: the layer that gets the attribute.
        channels: how many steps.
        dt_min: smallest initial step, > 0.
        dt_max: largest initial step, >= `dt_min`.
        learn: an `nn.Parameter` (True) or a buffer that no optimiser touches (False).

    Raises:
        InvalidInputError: unless 0 < dt_min <= dt_max.
    """
    if not (isinstance(dt_min, (int, float)) and isinstance(dt_max, (int, float)) and 0 < dt_min <= dt_max):
        raise InvalidInputError(f"`dt_min`, `dt_max` must satisfy 0 < dt_min <= dt_max; got {dt_min!r}, {dt_max!r}")
    log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
    if learn:
        module.log_dt = nn.Parameter(log_dt)
    else:
        module.register_buffer("log_dt", log_dt)


def check_sequence(u: object, width: int) -> None:
    """Raise `InvalidInputError` unless `u` is a tensor `[B, L, width]` with L >= 1."""
    if not isinstance(u, Tensor) or u.ndim != 3 or u.shape[-1] != width or u.shape[1] < 1:
        shape = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
        raise InvalidInputError(f"`u` must be a tensor [B, L, {width}] with L >= 1; got {shape}")


def special_parameters(module: nn.Module, ssm: list[nn.Parameter]) -> dict[str, list[nn.Parameter]]:
    """`{"ssm": ssm, "dt": [log_dt] if learned}`, the groups of `neuralct.models.deep_ssm.param_groups`."""
    return {"ssm": ssm, "dt": [module.log_dt] if isinstance(module.log_dt, nn.Parameter) else []}
