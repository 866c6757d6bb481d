"""Merging observations that are closer in time than a gap: one observation per cluster.

Gaps far shorter than their neighbours make a cubic control path overshoot (the "close times"
section of the irregular-series guide); `merge_close_times` removes them from a batch or a series.
"""

from __future__ import annotations

from typing import overload

import torch
from torch import Tensor

from .._checks import check_number, describe
from ..errors import InvalidInputError
from .series import IrregularBatch, Series


@overload
def merge_close_times(data: IrregularBatch, min_gap: float) -> IrregularBatch: ...
@overload
def merge_close_times(data: Series, min_gap: float) -> Series: ...
def merge_close_times(data: IrregularBatch | Series, min_gap: float) -> IrregularBatch | Series:
    """Merge observations less than `min_gap` apart in time into one, averaging each channel.

    Neighbouring real times closer than `min_gap` join one cluster (in chains: $t_k$ joins
    $t_{k-1}$'s cluster when $t_k - t_{k-1} <$ `min_gap`, so evenly spaced times closer than
    `min_gap` all merge). A cluster becomes one observation at its **last** time, where all of
    it is known (so a causal model stays causal), with each channel the mean of the values
    observed in the cluster and observed if any of them is (masks OR'ed). Exact duplicates
    (a `Series` may repeat a time) always merge. Use it on gaps far shorter than their
    neighbours, which make the `"hermite"` control overshoot, and which the default
    `"limited_hermite"` control cannot limit between a series' first two observations (see
    [`CubicPath.limited_hermite`][neuralct.CubicPath.limited_hermite]).

    Args:
        data: an `IrregularBatch` (each sample merged on its own, padding untouched) or one
            `Series` with non-decreasing times.
        min_gap: the shortest gap kept, > 0, in the unit of the times.

    Returns:
        The same kind of object with the merged observations: a batch's `lengths` and padding
        shrink to the clusters; `targets` and `static` are kept.

    Raises:
        InvalidInputError: `min_gap` not a positive finite number, `data` neither a batch nor a
            `Series`, or a `Series` whose times decrease or do not match its values.
    """
    check_number("min_gap", min_gap, 0.0, open_low=True)
    if isinstance(data, IrregularBatch):
        times, values, mask, lengths = _merge(data.times, data.values, data.mask, data.valid, min_gap)
        return IrregularBatch.from_padded(times, values, mask, lengths, targets=data.targets, static=data.static)
    if not isinstance(data, Series):
        raise InvalidInputError(f"`data` must be an IrregularBatch or a Series; got {describe(data)}")
    mask = _series_mask(data)
    valid = torch.ones_like(mask[None, :, 0])
    times, values, mask, _ = _merge(data.times[None], data.values[None], mask[None], valid, min_gap)
    values = values[0].masked_fill(~mask[0], float("nan"))
    return Series(times[0], values, mask[0], target=data.target, static=data.static)


def _merge(times: Tensor, values: Tensor, mask: Tensor, valid: Tensor, min_gap: float) -> tuple[Tensor, ...]:
    """Merged `times` `[B, N]`, `values` `[B, N, C]` (0 where unobserved), `mask` and `lengths` `[B]`
    from `times` `[B, T]`, `values` and `mask` `[B, T, C]` and `valid` `[B, T]` (a prefix of each row)."""
    starts = torch.ones_like(valid)
    starts[:, 1:] = times.diff(dim=1) >= min_gap
    cluster = starts.cumsum(dim=1) - 1  # the merged position of each real position
    lengths = cluster.masked_fill(~valid, -1).amax(dim=1) + 1
    width = int(lengths.max())
    slot = cluster.masked_fill(~valid, width)  # padding goes to a spare slot, dropped below
    observed = mask & valid.unsqueeze(-1)
    index = slot.unsqueeze(-1).expand_as(values)
    empty = values.new_zeros(values.shape[0], width + 1, values.shape[2])
    total = empty.scatter_add(1, index, torch.where(observed, values, torch.zeros_like(values)))
    count = empty.scatter_add(1, index, observed.to(values.dtype))[:, :width]
    last = times.new_zeros(times.shape[0], width + 1).scatter_reduce(1, slot, times, "amax", include_self=False)
    merged = count > 0
    mean = torch.where(merged, total[:, :width] / count.clamp_min(1), torch.zeros_like(count))
    return last[:, :width], mean, merged, lengths


def _series_mask(series: Series) -> Tensor:
    """`[T, C]` the observed entries of a `Series`, after checking its shapes and times."""
    times, values = series.times, series.values
    if not isinstance(values, Tensor) or values.ndim != 2 or not values.is_floating_point():
        raise InvalidInputError(f"`data.values` must be a floating tensor [T, C]; got {describe(values)}")
    if not isinstance(times, Tensor) or times.shape != values.shape[:1] or not times.is_floating_point():
        raise InvalidInputError(f"`data.times` must be a floating tensor [{values.shape[0]}]; got {describe(times)}")
    if bool((times.diff() < 0).any()):
        k = int((times.diff() < 0).nonzero()[0])
        raise InvalidInputError(
            f"`data.times` must not decrease; times[{k + 1}] = {float(times[k + 1]):.6g} after {float(times[k]):.6g}"
        )
    if series.mask is None:
        return ~values.isnan()
    if not isinstance(series.mask, Tensor) or series.mask.shape != values.shape:
        raise InvalidInputError(f"`data.mask` must have the shape of its values {tuple(values.shape)}")
    return series.mask.bool()
