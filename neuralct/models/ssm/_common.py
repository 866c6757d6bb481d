"""What the SSM layers (LSSL, HOPE, S4D) share: their log-steps, their call checks, and the choice
between the convolution (a uniform grid in every sample, or for S4D a lattice: gaps that are whole
multiples of one step) and the recurrence (per-step $\\Delta_k$)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..._checks import check_choice, describe
from ...errors import InvalidInputError


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
        raise InvalidInputError(f"`u` must be a tensor [B, L, {width}] with L >= 1; got {describe(u)}")


def special_parameters(module: nn.Module, ssm: list[nn.Parameter]) -> dict[str, list[nn.Parameter]]:
    """`{"ssm": ssm, "dt": [log_dt] if learned}`, the groups of `neuralct.models.ssm.deep.param_groups`."""
    return {"ssm": ssm, "dt": [module.log_dt] if isinstance(module.log_dt, nn.Parameter) else []}


MODES = ("auto", "conv", "recurrent")


def check_call(u: object, width: int, dt: object, mode: str) -> None:
    """Raise `InvalidInputError` unless `u` is `[B, L, width]`, `dt` is `None` or a positive
    `[B, L]` tensor, and `mode` is one of `MODES` ("conv" with `dt` only on a uniform grid)."""
    check_sequence(u, width)
    check_choice("mode", mode, MODES)
    if dt is None:
        return
    expected = tuple(u.shape[:2])  # type: ignore[union-attr]
    if not isinstance(dt, Tensor) or tuple(dt.shape) != expected:
        raise InvalidInputError(f"`dt` must be a tensor [B, L] = {expected}; got {describe(dt)}")
    if not bool((dt > 0).all()):
        raise InvalidInputError(f"`dt` must be > 0 everywhere; got a smallest value {dt.min().item()}")
    if mode == "conv" and uniform_spacing(dt) is None:
        raise InvalidInputError("`mode` 'conv' needs a uniform grid in each sample; got varying gaps (use 'recurrent')")


def uniform_spacing(dt: Tensor) -> Tensor | None:
    """`[B]` each sample's step when every row of `dt` `[B, L]` is constant, else `None`.

    Constant means equal to the row's mean within $\\sqrt{\\varepsilon}$ of the dtype, relative:
    gaps taken from rounded times differ in their last digits on a uniform grid.
    """
    mean = dt.mean(dim=1, keepdim=True)
    tolerance = torch.finfo(dt.dtype).eps ** 0.5
    if bool(((dt - mean).abs() <= tolerance * mean).all()):
        return mean.squeeze(1)
    return None


def pick_mode(dt: Tensor | None, mode: str) -> tuple[str, Tensor | None]:
    """`("conv", spacing)` or `("recurrent", None)`: what `mode` "auto" runs for `dt`; the spacing
    is `None` without `dt`, `[1]` when every sample has the same one, else `[B]`."""
    if mode == "recurrent":
        return "recurrent", None
    if dt is None:
        return "conv", None
    spacing = uniform_spacing(dt)
    if spacing is None:
        return "recurrent", None
    # One spacing for the whole batch: one kernel `[1]` for all samples, not B copies of it.
    return "conv", spacing[:1] if bool((spacing == spacing[0]).all()) else spacing


LATTICE_GROWTH = 4


def lattice_cells(dt: Tensor, growth: float = LATTICE_GROWTH) -> tuple[Tensor, Tensor] | None:
    """Each sample's gaps as whole multiples of its smallest gap, when they are: `(spacing, cells)` or `None`.

    Series with dropped observations from a regular sampler have such gaps. A layer whose
    discretisation splits exactly over a gap (zero-order hold) can then run on the lattice of
    spacing-wide cells as a convolution (see `neuralct.models.ssm.kernels.fill_lattice`).

    Args:
        dt: `[B, L]` positive gaps.
        growth: the longest lattice accepted, in multiples of L (a longer one would cost more
            than the recurrence).

    Returns:
        `spacing` (`[1]` when every sample has the same one, else `[B]`) and `cells` `[B, L]`
        (int64, >= 1) with `dt` = spacing x cells to rounding: the ratio is within
        $16 \\varepsilon M$ of a whole number, M the row's lattice length (gaps of rounded times
        carry an error of that size). `None` if a gap is not a whole multiple or the longest
        row's lattice exceeds `growth` x L cells.
    """
    spacing = dt.min(dim=1, keepdim=True).values
    ratio = dt / spacing
    cells = ratio.round()
    total = cells.sum(dim=1, keepdim=True)
    on_lattice = (ratio - cells).abs() <= 16 * torch.finfo(dt.dtype).eps * total
    if not bool(on_lattice.all()) or float(total.max()) > growth * dt.shape[1]:
        return None
    spacing = spacing.squeeze(1)
    return (spacing[:1] if bool((spacing == spacing[0]).all()) else spacing), cells.long()
