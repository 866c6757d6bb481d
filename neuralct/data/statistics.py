"""Statistics of the observed entries of padded values: what normalisation is fitted from.

Every function takes `values` and a boolean `mask` of the same shape (`[B, T, C]` for a batch)
and counts only the entries where `mask` is `True`, so padding and missing values never count.
"""

from __future__ import annotations

import torch
from torch import Tensor

# The interquartile range of a normal distribution in units of its standard deviation,
# 2 * Phi^-1(3/4): IQR / this is the robust estimate of sigma.
IQR_PER_STD = 1.3489795003921634


def observed_mean_std(values: Tensor, mask: Tensor, dims: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Mean and population standard deviation of the observed entries, reduced over `dims`.

    A group with no spread (a constant channel, a single observation, or no observation at all)
    gets standard deviation 1, so that dividing by it only centres. Constancy is tested exactly
    (largest observed value equal to the smallest): a constant channel whose computed variance
    is a rounding residue (1e-34) would otherwise be blown up to +-1.

    Args:
        values: `[B, T, C]` values, 0 where unobserved.
        mask: `[B, T, C]` booleans, `True` where observed.
        dims: the dimensions to reduce: `(0, 1)` per channel, `(1,)` per sample and channel.

    Returns:
        `(mean, std)`, each shaped like `values` with `dims` kept as size 1 (`[1, 1, C]` or `[B, 1, C]`).
    """
    weight = mask.to(values.dtype)
    count = weight.sum(dim=dims, keepdim=True).clamp_min(1)
    mean = values.sum(dim=dims, keepdim=True) / count
    var = (((values - mean) * weight) ** 2).sum(dim=dims, keepdim=True) / count
    largest = values.masked_fill(~mask, -torch.inf).amax(dim=dims, keepdim=True)
    smallest = values.masked_fill(~mask, torch.inf).amin(dim=dims, keepdim=True)
    std = torch.where((var > 0) & (largest != smallest), var.sqrt(), torch.ones_like(var))
    return mean, std


def observed_median_iqr(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per channel, the median and the interquartile range over `IQR_PER_STD` of the observed entries.

    Quantiles interpolate linearly between order statistics, as NumPy's default does. A channel
    whose interquartile range is 0 gets scale 1, like a constant channel in `observed_mean_std`.

    Args:
        values: `[B, T, C]` values.
        mask: `[B, T, C]` booleans, `True` where observed; every channel observed at least once.

    Returns:
        `(median, scale)`, each `[C]`.
    """
    medians, scales = [], []
    for c in range(values.shape[-1]):
        ordered = values[..., c][mask[..., c]].sort().values
        low, median, high = (_quantile(ordered, q) for q in (0.25, 0.5, 0.75))
        spread = (high - low) / IQR_PER_STD
        medians.append(median)
        scales.append(torch.where(spread > 0, spread, torch.ones_like(spread)))
    return torch.stack(medians), torch.stack(scales)


def near_zero_shares(values: Tensor, mask: Tensor, width: float) -> Tensor:
    """`[C]` per channel, the share of observed entries with `0 < |x| < width` (0 for an unobserved
    channel). Exact zeros do not count: after centring they are values equal to the centre (a
    constant channel, the median of integer data), which no choice of scale would move."""
    near = (values.abs() < width) & (values != 0) & mask
    return near.flatten(0, -2).sum(dim=0) / mask.flatten(0, -2).sum(dim=0).clamp_min(1)


def _quantile(ordered: Tensor, q: float) -> Tensor:
    """The `q`-quantile of sorted `ordered` `[N]`, N >= 1, by linear interpolation (NumPy's "linear";
    written out because `torch.quantile` refuses inputs over 2^24 entries)."""
    position = q * (ordered.shape[0] - 1)
    below = int(position)
    above = min(below + 1, ordered.shape[0] - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])
