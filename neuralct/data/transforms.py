"""Transforms of an [`IrregularBatch`][neuralct.data.IrregularBatch]: dropped observations, time jitter,
normalisation, merged close times.

Each returns a new batch and leaves its input alone; randomness comes only from the
`torch.Generator` passed in, so a seeded generator gives the same result on every run.

```python
import torch
from neuralct.data import IrregularBatch
from neuralct.data.transforms import Normalize, drop_observations, jitter_times

batch = IrregularBatch.from_padded(torch.linspace(0, 1, 20), torch.randn(8, 20, 3))
sparse = drop_observations(batch, 0.5, generator=torch.Generator().manual_seed(0))
sparse.mask.sum(dim=1)  # [8, 3]: every channel of every sample keeps 10 of its 20 values
shaken = jitter_times(sparse, 0.5, generator=torch.Generator().manual_seed(1))
normalize = Normalize.fit(sparse)  # per-channel mean/std over observed values only
unit = normalize(shaken)
```
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import overload

import torch
from torch import Tensor

from ..errors import InvalidInputError
from .series import IrregularBatch, Series, _describe, check_every_channel_observed, pad_times


def drop_observations(
    batch: IrregularBatch, rate: float, *, per_channel: bool = True, generator: torch.Generator | None = None
) -> IrregularBatch:
    """Remove a fraction `rate` of every sample's observed values at random (the 30/50/70% protocol).

    Kidger et al. (2020) test irregular-series models by dropping 30%, 50% and 70% of each
    series' observations independently per sample. Here, with `per_channel=True`, each channel
    of each sample independently loses $k = \\min(\\mathrm{round}(r\\,n_{bc}),\\ n_{bc} - 1)$ of its
    $n_{bc}$ observed values, chosen uniformly without replacement; with `per_channel=False` whole
    time points are dropped instead (the same count of the $n_b$ positions where anything was
    observed, as in the reference code, which takes $\\lfloor r\\,n_b \\rfloor$ of equal-length series).
    The cap $n - 1$ means that **a channel (or a sample) that had an observation keeps at least
    one**: no sample ends empty and no channel disappears; it only binds for short columns
    ($n \\le 1 / (2 (1 - r))$; a single observation is never dropped). Times, lengths, targets
    and static features are unchanged; dropped entries become unobserved (mask `False`, value
    0), and a position may be left with no observation.

    Reference: Kidger, Morrill, Foster and Lyons, "Neural controlled differential equations
    for irregular time series", NeurIPS 2020.

    Args:
        batch: the batch.
        rate: the fraction to drop, in `[0, 1)`.
        per_channel: drop per channel (`True`) or whole time points (`False`).
        generator: the CPU random source; `None` uses torch's global one.

    Returns:
        The batch with a subset of its observations: the new mask is `mask & kept`.

    Raises:
        InvalidInputError: `rate` outside `[0, 1)` or a non-IrregularBatch.
    """
    _check_batch(batch)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise InvalidInputError(f"`rate` must be a number in [0, 1) (1 would empty every sample); got {rate!r}")
    if rate == 0:
        return batch
    observed = batch.mask if per_channel else batch.observed.unsqueeze(-1)
    # A random rank among the observed entries of each (sample, channel) column; unobserved
    # entries rank last, so the k lowest ranks are k distinct observed values.
    scores = torch.rand(observed.shape, generator=generator, dtype=torch.float64).to(observed.device)
    scores = scores.masked_fill(~observed, 2.0)
    rank = scores.argsort(dim=1).argsort(dim=1)
    count = observed.sum(dim=1, keepdim=True)
    # The nearest whole number to rate * n, but at most n - 1: every column keeps an observation.
    drop = torch.minimum(torch.round(rate * count.to(torch.float64)).long(), (count - 1).clamp_min(0))
    kept = batch.mask & ~(observed & (rank < drop))
    return replace(batch, values=batch.values.masked_fill(~kept, 0.0), mask=kept)


def jitter_times(batch: IrregularBatch, scale: float, *, generator: torch.Generator | None = None) -> IrregularBatch:
    """Move every real time at random while keeping each row strictly increasing.

    Time $t_k$ moves by $\\epsilon_k = \\tfrac{s}{2}\\,u_k\\,\\min(t_k - t_{k-1},\\ t_{k+1} - t_k)$ with
    $u_k \\sim U(-1, 1)$ (a sample's first and last real times use their one neighbouring gap).
    Two neighbours each move by less than half the gap between them when $s < 1$, so their order
    holds strictly. Padded times are rebuilt to continue each sample's new last step; values,
    masks and lengths are unchanged. A sample with a single real time keeps it.

    Args:
        batch: the batch.
        scale: $s$ in `[0, 1)`, the largest move as a fraction of half the smaller neighbouring gap.
        generator: the CPU random source; `None` uses torch's global one.

    Returns:
        The batch with jittered `times` `[B, T]`.

    Raises:
        InvalidInputError: `scale` outside `[0, 1)` or a non-IrregularBatch.
    """
    _check_batch(batch)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.0 <= scale < 1.0:
        raise InvalidInputError(f"`scale` must be a number in [0, 1) so that times stay increasing; got {scale!r}")
    times = batch.times
    gaps = times.diff(dim=1)
    inf = float("inf")
    before = torch.nn.functional.pad(gaps, (1, 0), value=inf)
    after = torch.nn.functional.pad(gaps, (0, 1), value=inf)
    # The last real time's "after" gap leads into the padding, which is rebuilt: ignore it.
    after = after.masked_fill(torch.arange(times.shape[1], device=times.device) >= batch.last_index.unsqueeze(1), inf)
    room = torch.minimum(before, after)
    room = torch.where(torch.isfinite(room), room, torch.zeros_like(room))
    noise = torch.rand(times.shape, generator=generator, dtype=torch.float64).to(times) * 2 - 1
    moved = torch.where(batch.valid, times + 0.5 * scale * noise * room, times)
    return replace(batch, times=pad_times(moved, batch.lengths))


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
    if isinstance(min_gap, bool) or not isinstance(min_gap, (int, float)) or not 0 < min_gap < float("inf"):
        raise InvalidInputError(f"`min_gap` must be a positive finite number; got {min_gap!r}")
    if isinstance(data, IrregularBatch):
        times, values, mask, lengths = _merge(data.times, data.values, data.mask, data.valid, min_gap)
        return IrregularBatch.from_padded(times, values, mask, lengths, targets=data.targets, static=data.static)
    if not isinstance(data, Series):
        raise InvalidInputError(f"`data` must be an IrregularBatch or a Series; got {type(data).__name__}")
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
        raise InvalidInputError(f"`data.values` must be a floating tensor [T, C]; got {_describe(values)}")
    if not isinstance(times, Tensor) or times.shape != values.shape[:1] or not times.is_floating_point():
        raise InvalidInputError(f"`data.times` must be a floating tensor [{values.shape[0]}]; got {_describe(times)}")
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


@dataclass(frozen=True)
class Normalize:
    """Per-channel standardisation with statistics of observed values only, fitted on a training split.

    `Normalize.fit(train)` computes each channel's mean $\\mu_c$ and (population) standard
    deviation $\\sigma_c$ over the entries where `mask` is `True`: padding and missing values
    never count. Applying it maps observed values to $(x - \\mu_c) / \\sigma_c$ and leaves
    unobserved values at 0. Fit on the training split and apply the same instance to the
    validation and test splits, so that no test statistic leaks into training.

    Args:
        mean: `[C]` channel means.
        std: `[C]` channel standard deviations, finite and positive (a constant channel is
            fitted with std 1, so it is only centred).

    Raises:
        InvalidInputError: `mean` and `std` not 1-D tensors of the same length, non-finite
            entries, or a non-positive std.
    """

    mean: Tensor
    std: Tensor

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if not isinstance(value, Tensor) or value.ndim != 1 or not value.is_floating_point():
                raise InvalidInputError(f"`{name}` must be a floating tensor [C]; got {_describe(value)}")
            if not bool(torch.isfinite(value).all()):
                raise InvalidInputError(f"`{name}` must be finite; got {value.tolist()}")
        if self.mean.shape != self.std.shape:
            raise InvalidInputError(
                f"`mean` and `std` must both be [C]; got {tuple(self.mean.shape)} and {tuple(self.std.shape)}"
            )
        if not bool((self.std > 0).all()):
            raise InvalidInputError(f"`std` must be positive; got {self.std.tolist()}")

    @classmethod
    def fit(cls, batch: IrregularBatch) -> Normalize:
        """The statistics of `batch`'s observed values, per channel (in float64, stored in its dtype).

        Raises:
            InvalidInputError: a channel observed in no sample (it has no statistics).
        """
        _check_batch(batch)
        check_every_channel_observed(batch, "the batch the statistics are fitted on")
        mask = batch.mask.to(torch.float64)
        values = batch.values.to(torch.float64)
        count = mask.sum(dim=(0, 1))
        mean = values.sum(dim=(0, 1)) / count
        var = (((values - mean) * mask) ** 2).sum(dim=(0, 1)) / count
        std = torch.where(var > 0, var.sqrt(), torch.ones_like(var))
        return cls(mean=mean.to(batch.values.dtype), std=std.to(batch.values.dtype))

    def apply(self, batch: IrregularBatch) -> IrregularBatch:
        """`batch` with observed values standardised and unobserved ones left at 0."""
        _check_batch(batch)
        if batch.channels != self.mean.shape[0]:
            raise InvalidInputError(
                f"`batch` must have the {self.mean.shape[0]} channels this Normalize was fitted on; "
                f"got {batch.channels}"
            )
        mean, std = self.mean.to(batch.values), self.std.to(batch.values)
        scaled = ((batch.values - mean) / std).masked_fill(~batch.mask, 0.0)
        return replace(batch, values=scaled)

    def __call__(self, batch: IrregularBatch) -> IrregularBatch:
        """Same as [`apply`][neuralct.data.transforms.Normalize.apply]."""
        return self.apply(batch)


def _check_batch(batch: object) -> None:
    if not isinstance(batch, IrregularBatch):
        raise InvalidInputError(f"`batch` must be an IrregularBatch; got {type(batch).__name__}")
