"""Perturbations of irregular series, for testing a model's robustness at inference.

A perturbation is a small frozen dataclass with a `level` (its strength), a `label` and
`apply(batch, generator) -> IrregularBatch`; every one returns a new batch (`dataclasses.replace`
runs `IrregularBatch`'s checks), so the result passes the same validation as any batch (observed
values finite, unobserved ones 0, rows strictly increasing, no empty sample):

- `GaussianNoise(sigma)`: $x \\mapsto x + \\sigma\\,\\varepsilon$ on observed values only;
- `SaltAndPepper(fraction)`: each observed value, with probability `fraction`, replaced by its
  channel's lowest or highest value (by default those observed in the batch);
- `DropObservations(fraction)`: that fraction of each channel's observations removed
  (`neuralct.data.transforms.drop_observations`; every channel of a sample keeps one);
- `TimeJitter(scale)`: each real time moved by Gaussian noise of `scale` times the sample's
  median gap, the observations re-sorted by their new times.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from .._checks import check_number
from ..data.series import IrregularBatch, check_batch, pad_times
from ..data.transforms import drop_observations
from ..errors import InvalidInputError


class AbstractPerturbation(abc.ABC):
    """A seeded test-time change of an `IrregularBatch`; `kind` names the family, `parameter` its level."""

    kind: ClassVar[str]
    parameter: ClassVar[str]

    @property
    @abc.abstractmethod
    def level(self) -> float:
        """The strength of the perturbation (0: none)."""

    @abc.abstractmethod
    def apply(self, batch: IrregularBatch, generator: torch.Generator) -> IrregularBatch:
        """The perturbed copy of `batch` (`[B, T]` times, `[B, T, C]` values and mask); `batch` is
        left alone and randomness comes only from the CPU `generator`."""

    @property
    def label(self) -> str:
        """A short description for tables and legends, e.g. `"gaussian noise sigma=0.1"`."""
        return f"{self.kind.replace('_', ' ')} {self.parameter}={self.level:g}"


@dataclass(frozen=True)
class GaussianNoise(AbstractPerturbation):
    """Observed values plus independent $N(0, \\sigma^2)$ noise; unobserved entries stay 0 and unobserved.

    Args:
        sigma: the noise standard deviation, >= 0, in the units of the values (of the
            normalised data for a run's splits).
    """

    sigma: float
    kind: ClassVar[str] = "gaussian_noise"
    parameter: ClassVar[str] = "sigma"

    def __post_init__(self) -> None:
        _check_level("sigma", self.sigma, upper=None)

    @property
    def level(self) -> float:
        """`sigma`."""
        return float(self.sigma)

    def apply(self, batch: IrregularBatch, generator: torch.Generator) -> IrregularBatch:
        """`batch` with noisy observed values `[B, T, C]`."""
        check_batch(batch)
        noise = torch.randn(batch.values.shape, generator=generator, dtype=batch.values.dtype)
        noisy = batch.values + self.sigma * noise.to(batch.values.device)
        return dataclasses.replace(batch, values=torch.where(batch.mask, noisy, batch.values))


@dataclass(frozen=True)
class SaltAndPepper(AbstractPerturbation):
    """Each observed value, with probability `fraction`, replaced by an extreme: `low` or `high`
    with equal chance (impulse noise, a sensor stuck at a rail).

    Args:
        fraction: the probability that an observed entry is replaced, in `[0, 1)`.
        low: the low extreme; `None`: each channel's minimum over the batch's observed values.
        high: the high extreme; `None`: each channel's maximum over the batch's observed values.
    """

    fraction: float
    low: float | None = None
    high: float | None = None
    kind: ClassVar[str] = "salt_and_pepper"
    parameter: ClassVar[str] = "fraction"

    def __post_init__(self) -> None:
        _check_level("fraction", self.fraction, upper=1.0)
        for name in ("low", "high"):
            check_number(name, getattr(self, name), optional=True)
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise InvalidInputError(f"`low` must be below `high`; got low={self.low!r}, high={self.high!r}")

    @property
    def level(self) -> float:
        """`fraction`."""
        return float(self.fraction)

    def apply(self, batch: IrregularBatch, generator: torch.Generator) -> IrregularBatch:
        """`batch` with a random `fraction` of its observed values `[B, T, C]` set to the extremes."""
        check_batch(batch)
        low, high = self.extremes(batch)
        # Two draws: which entries are hit, and which rail; a larger fraction hits a superset.
        hit = torch.rand(batch.values.shape, generator=generator, dtype=torch.float64) < self.fraction
        upper = torch.rand(batch.values.shape, generator=generator, dtype=torch.float64) < 0.5
        hit, upper = hit.to(batch.values.device) & batch.mask, upper.to(batch.values.device)
        salted = torch.where(upper, high, low).to(batch.values.dtype)
        return dataclasses.replace(batch, values=torch.where(hit, salted, batch.values))

    def extremes(self, batch: IrregularBatch) -> tuple[Tensor, Tensor]:
        """`([C], [C])` the low and high values used on `batch`'s channels."""
        values = batch.values
        observed_low = values.masked_fill(~batch.mask, math.inf).amin(dim=(0, 1))
        observed_high = values.masked_fill(~batch.mask, -math.inf).amax(dim=(0, 1))
        low = observed_low if self.low is None else torch.full_like(observed_low, self.low)
        high = observed_high if self.high is None else torch.full_like(observed_high, self.high)
        return low, high


@dataclass(frozen=True)
class DropObservations(AbstractPerturbation):
    """A `fraction` of each channel's remaining observations removed at random (they become
    unobserved, value 0); every channel of a sample that had an observation keeps at least one,
    so no sample ends empty. See `neuralct.data.transforms.drop_observations`.

    Args:
        fraction: the fraction dropped, in `[0, 1)`.
    """

    fraction: float
    kind: ClassVar[str] = "drop_observations"
    parameter: ClassVar[str] = "fraction"

    def __post_init__(self) -> None:
        _check_level("fraction", self.fraction, upper=1.0)

    @property
    def level(self) -> float:
        """`fraction`."""
        return float(self.fraction)

    def apply(self, batch: IrregularBatch, generator: torch.Generator) -> IrregularBatch:
        """`batch` with a subset of its observations, positions left empty removed (`[B, T', C]`)."""
        check_batch(batch)
        dropped = drop_observations(batch, float(self.fraction), per_channel=True, generator=generator)
        return dropped


@dataclass(frozen=True)
class TimeJitter(AbstractPerturbation):
    """Every real observation time moved by $N(0, (s\\,g_b)^2)$ noise, with $g_b$ the median gap
    between sample b's real times (0 for a single observation: it keeps its time).

    Observations travel with their times: each row is re-sorted by the new times, so two
    observations that swap places are seen in the new order, as a clock error would show them.
    Exact ties (probability 0, but float rounding) are broken by the next representable time, so
    every row stays strictly increasing; padded times are rebuilt to continue each sample's last
    step. Level 0 leaves the batch as it was.

    Args:
        scale: $s$, >= 0, the noise standard deviation in units of the median gap.
    """

    scale: float
    kind: ClassVar[str] = "time_jitter"
    parameter: ClassVar[str] = "scale"

    def __post_init__(self) -> None:
        _check_level("scale", self.scale, upper=None)

    @property
    def level(self) -> float:
        """`scale`."""
        return float(self.scale)

    def apply(self, batch: IrregularBatch, generator: torch.Generator) -> IrregularBatch:
        """`batch` with jittered, re-sorted times `[B, T]` (values and mask `[B, T, C]` follow them)."""
        check_batch(batch)
        times, valid = batch.times, batch.valid
        noise = torch.randn(times.shape, generator=generator, dtype=torch.float64).to(times)
        moved = torch.where(valid, times + self.scale * median_gap(batch).unsqueeze(1) * noise, times)
        # Padded positions sort last (stable sort: level 0 is the identity).
        order = moved.masked_fill(~valid, math.inf).argsort(dim=1, stable=True)
        moved = _strictly_increasing(moved.gather(1, order), valid)
        spread = order.unsqueeze(-1).expand_as(batch.values)
        return dataclasses.replace(
            batch,
            times=pad_times(moved, batch.lengths),
            values=batch.values.gather(1, spread),
            mask=batch.mask.gather(1, spread),
        )


def median_gap(batch: IrregularBatch) -> Tensor:
    """`[B]` the median gap between consecutive real times of each sample (0 for a single one)."""
    gaps = batch.times.diff(dim=1)
    real = batch.valid[:, 1:]
    median = gaps.masked_fill(~real, math.nan).nanmedian(dim=1).values
    return torch.nan_to_num(median, nan=0.0)


def _strictly_increasing(times: Tensor, valid: Tensor) -> Tensor:
    """`[B, T]` sorted real `times` with exact ties moved up to the next representable time."""
    tied = (times.diff(dim=1) <= 0) & valid[:, 1:]
    if not bool(tied.any()):
        return times
    columns = list(times.unbind(dim=1))
    for k in range(1, len(columns)):
        floor = torch.nextafter(columns[k - 1], torch.full_like(columns[k - 1], math.inf))
        columns[k] = torch.where(valid[:, k], torch.maximum(columns[k], floor), columns[k])
    return torch.stack(columns, dim=1)


def _check_level(name: str, value: object, *, upper: float | None) -> None:
    check_number(name, value, 0.0, math.inf if upper is None else upper, open_high=upper is not None)


__all__ = ["AbstractPerturbation", "DropObservations", "GaussianNoise", "SaltAndPepper", "TimeJitter", "median_gap"]
