"""Transforms of an [`IrregularBatch`][neuralct.data.IrregularBatch]: dropped observations, time jitter,
normalisation (merged close times are in `neuralct.data.merging`).

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

import warnings
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from .._checks import check_choice, check_number
from .._validate import check_tensor
from ..errors import InvalidInputError
from .series import IrregularBatch, check_batch, check_every_channel_observed, pad_times
from .statistics import near_zero_shares, observed_mean_std, observed_median_iqr


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
    ($n \\le 1 / (2 (1 - r))$; a single observation is never dropped).

    Every position with no observed channel (emptied, or empty before) is then removed
    ([`compact`][neuralct.data.IrregularBatch.compact]): the series become truly irregular, with
    shorter `lengths` and the times of the positions kept, rather than stepped over by models
    (with `per_channel=False` every dropped time point goes). The exception is a batch whose
    targets have a time axis (`[B, T, ...]`, one target per position, as the oscillators'):
    its positions stay, emptied, so that each keeps its target. Targets and static features
    are unchanged; at `rate` 0 the batch is returned as it is.

    Reference: Kidger, Morrill, Foster and Lyons, "Neural controlled differential equations
    for irregular time series", NeurIPS 2020.

    Args:
        batch: the batch.
        rate: the fraction to drop, in `[0, 1)`.
        per_channel: drop per channel (`True`) or whole time points (`False`).
        generator: the CPU random source; `None` uses torch's global one.

    Returns:
        The batch with a subset of its observations, its empty positions removed.

    Raises:
        InvalidInputError: `rate` outside `[0, 1)` or a non-IrregularBatch.
    """
    check_batch(batch)
    check_number("rate", rate, 0.0, 1.0, open_high=True)  # 1 would empty every sample
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
    return _without_empty_positions(replace(batch, values=batch.values.masked_fill(~kept, 0.0), mask=kept))


def _without_empty_positions(batch: IrregularBatch) -> IrregularBatch:
    """`batch.compact()`, unless its targets `[B, T, ...]` follow its positions (each keeps its target)."""
    targets = batch.targets
    per_position = targets is not None and targets.ndim >= 2 and targets.shape[1] == batch.max_length
    return batch if per_position else batch.compact()


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
    check_batch(batch)
    check_number("scale", scale, 0.0, 1.0, open_high=True)  # below 1 so that times stay increasing
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


NORMALIZATIONS = ("standard", "robust", "series", "none", "asinh", "asinh+robust", "asinh+series")
"""The normalisation specs of config files and flags: a scale, optionally after `asinh` (`"asinh"`
alone is `asinh` then `"standard"`); see [`Normalize`][neuralct.data.transforms.Normalize]."""

_SCALES = ("standard", "robust", "series", "none")
_TRANSFORMS = (None, "asinh")
NEAR_ZERO = 0.05
"""A normalised value with `0 < |x|` below this counts as near zero."""
NEAR_ZERO_SHARE = 0.5
"""`Normalize.fit` warns when a channel has more than this share of near-zero values."""


class NearZeroWarning(UserWarning):
    """Most of a channel's normalised training values sit near zero: a few large series set its scale."""


@dataclass(frozen=True)
class Normalize:
    """Per-channel normalisation from statistics of observed values only, fitted on a training split.

    An optional `transform` first maps every observed value $x$ to $\\operatorname{asinh}(x)$,
    a signed log ($\\approx \\operatorname{sign}(x) \\ln 2|x|$ for large $|x|$, $\\approx x$ near 0)
    for series whose scales span orders of magnitude. Then `scale` maps it to $(x - m) / s$:

    - `"standard"` (default): $m$, $s$ the channel's mean and population standard deviation;
    - `"robust"`: $m$ the median, $s$ the interquartile range / 1.349 (a normal channel gets
      about its standard deviation), unmoved by a few huge values;
    - `"series"`: each series by its own per-channel mean and standard deviation, computed when
      applied (nothing is fitted, so a test series is scaled by its own values only);
    - `"none"`: no scaling.

    Statistics count only entries where `mask` is `True` (padding and missing values never do);
    a channel without spread (constant, a single observation) gets $s = 1$ and is only centred.
    Unobserved values stay 0. Fit on the training split and apply the same instance to the
    validation and test splits, so that no test statistic leaks into training; `to_dict` and
    `from_dict` store it with a run.

    Args:
        mean: `[C]` channel centres $m$ (the mean, or the median for `"robust"`); `None` for
            `"series"` and `"none"`, which fit nothing.
        std: `[C]` channel scales $s$, finite and positive; `None` likewise.
        scale: `"standard"`, `"robust"`, `"series"` or `"none"`.
        transform: `None` or `"asinh"`.

    Raises:
        InvalidInputError: an unknown `scale` or `transform`; for a fitted scale, `mean` and
            `std` not 1-D tensors of the same length, non-finite entries or a non-positive std;
            statistics given to a scale that fits none.
    """

    mean: Tensor | None = None
    std: Tensor | None = None
    scale: str = "standard"
    transform: str | None = None

    def __post_init__(self) -> None:
        _check_method(self.scale, self.transform)
        if self.scale in ("series", "none"):
            if self.mean is not None or self.std is not None:
                raise InvalidInputError(f"`mean` and `std` must be None for scale {self.scale!r}, which fits nothing")
            return
        for name in ("mean", "std"):
            check_tensor(name, getattr(self, name), ndim=1, shape="[C]", floating=True, finite=True)
        if self.mean.shape != self.std.shape:
            raise InvalidInputError(
                f"`mean` and `std` must both be [C]; got {tuple(self.mean.shape)} and {tuple(self.std.shape)}"
            )
        if not bool((self.std > 0).all()):
            raise InvalidInputError(f"`std` must be positive; got {self.std.tolist()}")

    @classmethod
    def fit(cls, batch: IrregularBatch, scale: str = "standard", transform: str | None = None) -> Normalize:
        """Fit to `batch`'s observed values, per channel (in float64, stored in the batch's dtype).

        Warns with `NearZeroWarning` when, applied to `batch` itself, it leaves more than
        `NEAR_ZERO_SHARE` (half) of some channel's observed values with $0 < |x| <$ `NEAR_ZERO`
        (0.05; see [`near_zero_fraction`][neuralct.data.transforms.near_zero_fraction]): the sign
        that a few series of a much larger scale set the channel's scale and flatten the others
        (try `"asinh"` or `"series"`). `"none"` is not checked.

        Raises:
            InvalidInputError: an unknown `scale` or `transform`; for `"standard"` and `"robust"`,
                a channel observed in no sample (it has no statistics).
        """
        check_batch(batch)
        _check_method(scale, transform)
        if scale in ("series", "none"):
            fitted = cls(scale=scale, transform=transform)
        else:
            check_every_channel_observed(batch, "the batch the statistics are fitted on")
            values = _transformed(batch.values.to(torch.float64), transform)
            if scale == "standard":
                mean, std = (s.flatten() for s in observed_mean_std(values, batch.mask, dims=(0, 1)))
            else:
                mean, std = observed_median_iqr(values, batch.mask)
            fitted = cls(mean.to(batch.values.dtype), std.to(batch.values.dtype), scale, transform)
        if scale != "none":
            _warn_if_near_zero(fitted.apply(batch), spec=f"{transform}+{scale}" if transform else scale)
        return fitted

    @classmethod
    def from_spec(cls, spec: str, batch: IrregularBatch) -> Normalize:
        """Fit the normalisation named by `spec` (one of `NORMALIZATIONS`) to `batch`."""
        return cls.fit(batch, *parse_normalization(spec))

    def apply(self, batch: IrregularBatch) -> IrregularBatch:
        """`batch` `[B, T, C]` with observed values normalised and unobserved ones left at 0."""
        check_batch(batch)
        if self.mean is not None and batch.channels != self.mean.shape[0]:
            raise InvalidInputError(
                f"`batch` must have the {self.mean.shape[0]} channels this Normalize was fitted on; "
                f"got {batch.channels}"
            )
        values = _transformed(batch.values, self.transform)
        if self.scale == "series":
            mean, std = (s.to(values) for s in observed_mean_std(values.to(torch.float64), batch.mask, dims=(1,)))
        elif self.scale == "none":
            mean, std = values.new_zeros(()), values.new_ones(())
        else:
            mean, std = self.mean.to(values), self.std.to(values)
        scaled = ((values - mean) / std).masked_fill(~batch.mask, 0.0)
        return replace(batch, values=scaled)

    def __call__(self, batch: IrregularBatch) -> IrregularBatch:
        """Same as [`apply`][neuralct.data.transforms.Normalize.apply]."""
        return self.apply(batch)

    def to_dict(self) -> dict[str, object]:
        """The method and its statistics as plain strings, lists of floats and `None`, for JSON."""
        mean, std = (None if value is None else value.tolist() for value in (self.mean, self.std))
        return {"scale": self.scale, "transform": self.transform, "mean": mean, "std": std}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Normalize:
        """The `Normalize` that `to_dict` described (statistics in float64; applying casts them
        to the batch's dtype, so a round trip gives identical outputs).

        Raises:
            InvalidInputError: not a dict with exactly the keys of `to_dict`, or statistics that
                are not lists of numbers.
        """
        keys = ("mean", "scale", "std", "transform")
        if not isinstance(data, dict) or sorted(data) != list(keys):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise InvalidInputError(f"`data` must be a dict with the keys {', '.join(keys)} (from to_dict); got {got}")
        stats = {name: _floats(name, data[name]) for name in ("mean", "std")}
        return cls(**stats, scale=data["scale"], transform=data["transform"])


def parse_normalization(spec: str) -> tuple[str, str | None]:
    """`(scale, transform)` of a spec of `NORMALIZATIONS`: `"asinh+robust"` -> `("robust", "asinh")`,
    `"asinh"` -> `("standard", "asinh")`, `"series"` -> `("series", None)`.

    Raises:
        InvalidInputError: `spec` not one of `NORMALIZATIONS` (the message lists them).
    """
    check_choice("normalization", spec, NORMALIZATIONS)
    if spec == "asinh":
        return "standard", "asinh"
    transform, _, scale = spec.rpartition("+")
    return scale, transform or None


def near_zero_fraction(batch: IrregularBatch) -> float:
    """The largest share, over the channels of a normalised `batch` `[B, T, C]`, of observed values
    with $0 < |x| <$ `NEAR_ZERO` (0.05); a standard normal channel has 0.04.

    Values exactly 0 are not counted (they are values at the centre, such as a constant
    channel's, which no scale would move); they still count in the denominator.
    """
    check_batch(batch)
    return float(near_zero_shares(batch.values, batch.mask, NEAR_ZERO).max())


def _warn_if_near_zero(normalised: IrregularBatch, spec: str) -> None:
    shares = near_zero_shares(normalised.values, normalised.mask, NEAR_ZERO)
    channel = int(shares.argmax())
    if float(shares[channel]) > NEAR_ZERO_SHARE:
        warnings.warn(
            f"normalization {spec!r} leaves {float(shares[channel]):.0%} of channel {channel}'s observed "
            f"training values within {NEAR_ZERO} of 0: a few series of a far larger scale set its scale. "
            "Try 'asinh' (a signed log) or 'series' (each series by its own statistics).",
            NearZeroWarning,
            stacklevel=3,
        )


def _check_method(scale: object, transform: object) -> None:
    check_choice("scale", scale, _SCALES)
    check_choice("transform", transform, _TRANSFORMS)


def _transformed(values: Tensor, transform: str | None) -> Tensor:
    """`values` after `transform`; asinh(0) = 0, so unobserved entries stay 0."""
    return values.asinh() if transform == "asinh" else values


def _floats(name: str, value: object) -> Tensor | None:
    """A float64 tensor from a list of numbers, or `None`."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise InvalidInputError(f"`data[{name!r}]` must be a list of numbers or None; got {value!r}")
    return torch.tensor(value, dtype=torch.float64)
