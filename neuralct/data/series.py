"""Irregularly sampled time series: one sample per row, each with its own times and mask.

An [`IrregularBatch`][neuralct.data.IrregularBatch] pads variable-length series to a common
length T without letting the padding pass for data:

- `mask` `[B, T, C]` is `True` exactly where a value was observed; a channel may be missing at
  a time where another is observed, and every padded position is unobserved;
- `values` `[B, T, C]` hold 0 wherever `mask` is `False` (never NaN, so that a model that
  forgets the mask gets zeros, not NaN, and a loss that uses it gets exactly the observed data);
- `times` `[B, T]` are strictly increasing in every row, padding included: padded positions
  continue a sample's last time step by step, so a row is a valid per-sample `t` for
  [`solve`][neuralct.solve.solve] as it stands. `valid` `[B, T]` says which positions are real.

```python
import torch
from neuralct.data import Series, collate

batch = collate([
    Series(torch.tensor([0.0, 0.4, 1.3]), torch.tensor([[1.0, 2.0], [0.5, float("nan")], [0.2, 0.1]])),
    Series(torch.tensor([0.1, 2.0]), torch.tensor([[3.0, 1.0], [1.0, 0.0]])),
])
batch.lengths  # tensor([3, 2])
batch.mask[0, 1]  # tensor([ True, False]): NaN means missing
```
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from .._checks import check_instance, describe
from ..errors import InvalidInputError


@dataclass(frozen=True)
class Series:
    """One variable-length series, the unit `collate` batches.

    Args:
        times: `[T_i]` observation times, strictly increasing.
        values: `[T_i, C]` observations; NaN marks a missing value when `mask` is `None`.
        mask: `[T_i, C]` booleans, `True` where observed (`None`: wherever `values` is not NaN).
        target: label or regression target of the series (a tensor of any shape), or `None`.
        static: `[S]` time-invariant features, or `None`.
    """

    times: Tensor
    values: Tensor
    mask: Tensor | None = None
    target: Tensor | None = None
    static: Tensor | None = None


@dataclass(frozen=True)
class IrregularBatch:
    """A padded batch of irregular series with per-sample times, masks and lengths.

    Args:
        times: `[B, T]` times, strictly increasing in every row (padded positions included).
        values: `[B, T, C]` observations, 0 where `mask` is `False`.
        mask: `[B, T, C]` booleans, `True` where observed; `False` at every padded position.
        lengths: `[B]` number of real positions of each sample, `1 <= lengths <= T`.
        targets: `[B, ...]` labels or targets, or `None`.
        static: `[B, S]` time-invariant features, or `None`.

    Raises:
        InvalidInputError: wrong shapes or dtypes, non-finite or non-increasing times, NaN in
            observed values, non-zero values at unobserved positions, observations in the
            padding, lengths outside `[1, T]`, or a sample with no observation. A channel
            observed in no sample is allowed (a minibatch, or one series, may miss a rare
            channel); what needs each channel observed, such as fitting normalisation
            statistics, checks it (`check_every_channel_observed`).
    """

    times: Tensor
    values: Tensor
    mask: Tensor
    lengths: Tensor
    targets: Tensor | None = None
    static: Tensor | None = None

    def __post_init__(self) -> None:
        _check_shapes(self)
        _check_times(self.times)
        _check_contents(self)

    @classmethod
    def from_padded(
        cls,
        times: Tensor,
        values: Tensor,
        mask: Tensor | None = None,
        lengths: Tensor | None = None,
        targets: Tensor | None = None,
        static: Tensor | None = None,
    ) -> IrregularBatch:
        """Build a batch from padded tensors, repairing what padding conventions differ on.

        Missing values may be NaN (when `mask` is `None`); padded times may be anything
        (NaN, repeated, 0): they are replaced by a continuation of each sample's last
        observed time. Values at unobserved positions are set to 0.

        Args:
            times: `[B, T]` or shared `[T]` times; the first `lengths[b]` of row b strictly increasing.
            values: `[B, T, C]` observations.
            mask: `[B, T, C]` booleans, or `None` to take `~isnan(values)`.
            lengths: `[B]` real lengths, or `None` for all T.
            targets: `[B, ...]` or `None`.
            static: `[B, S]` or `None`.

        Returns:
            The validated batch.
        """
        if not isinstance(values, Tensor) or values.ndim != 3:
            raise InvalidInputError(f"`values` must be a tensor [B, T, C]; got {describe(values)}")
        batch, length = values.shape[:2]
        if isinstance(times, Tensor) and times.ndim == 1:
            times = times.expand(batch, -1)
        if lengths is None:
            lengths = torch.full((batch,), length, dtype=torch.long, device=values.device)
        if not isinstance(lengths, Tensor) or lengths.shape != (batch,) or lengths.is_floating_point():
            raise InvalidInputError(f"`lengths` must be an integer tensor [{batch}]; got {describe(lengths)}")
        if mask is None:
            mask = ~torch.isnan(values)
        if not isinstance(mask, Tensor) or mask.shape != values.shape:
            raise InvalidInputError(
                f"`mask` must have the shape of `values` {tuple(values.shape)}; got {describe(mask)}"
            )
        valid = _valid(lengths, length)
        mask = mask.bool() & valid.unsqueeze(-1)
        return cls(
            times=pad_times(times, lengths),
            values=torch.where(mask, values, torch.zeros_like(values)),
            mask=mask,
            lengths=lengths.long(),
            targets=targets,
            static=static,
        )

    @property
    def batch_size(self) -> int:
        """Number of samples B."""
        return self.values.shape[0]

    @property
    def max_length(self) -> int:
        """Padded length T."""
        return self.values.shape[1]

    @property
    def channels(self) -> int:
        """Number of channels C."""
        return self.values.shape[2]

    @property
    def valid(self) -> Tensor:
        """`[B, T]` `True` at the real (unpadded) positions."""
        return _valid(self.lengths, self.max_length)

    @property
    def observed(self) -> Tensor:
        """`[B, T]` `True` where at least one channel was observed."""
        return self.mask.any(dim=-1)

    @property
    def last_index(self) -> Tensor:
        """`[B]` index of each sample's last real position."""
        return self.lengths - 1

    @property
    def last_time(self) -> Tensor:
        """`[B]` time of each sample's last real position."""
        return self.times.gather(1, self.last_index.unsqueeze(1)).squeeze(1)

    def with_nan(self) -> Tensor:
        """`[B, T, C]` values with NaN at every unobserved position (the torchcde convention)."""
        return self.values.masked_fill(~self.mask, float("nan"))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> IrregularBatch:
        """Every tensor on `device`; floating tensors (times, values, static and floating
        targets) in `dtype` when given. Boolean and integer tensors keep their dtype."""
        moved = {}
        for field in fields(self):
            tensor = getattr(self, field.name)
            if tensor is not None:
                tensor = tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else None)
            moved[field.name] = tensor
        return replace(self, **moved)

    def select(self, index: Tensor | list[int] | slice) -> IrregularBatch:
        """The samples at `index`, with the padding trimmed to their longest length.

        A rarely observed channel may be missing from every sample of the subset: that is
        still a valid batch.

        Raises:
            InvalidInputError: `index` selects no sample.
        """
        rows = torch.arange(self.batch_size, device=self.values.device)[index].reshape(-1)
        if rows.numel() == 0:
            raise InvalidInputError(f"`index` must select at least one of the {self.batch_size} samples; got none")
        length = int(self.lengths[rows].max())
        return IrregularBatch(
            times=self.times[rows, :length],
            values=self.values[rows, :length],
            mask=self.mask[rows, :length],
            lengths=self.lengths[rows],
            targets=None if self.targets is None else self.targets[rows],
            static=None if self.static is None else self.static[rows],
        )

    def compact(self) -> IrregularBatch:
        """The batch without its empty positions: truly irregular series.

        Every real position where no channel is observed is removed, per sample; the positions
        kept move left in order with their times unchanged, `lengths` `[B]` become the counts
        kept, and the padding is trimmed to the new longest sample (and its times rebuilt).
        Targets and static features are per sample and stay as they are. A batch without
        empty positions is returned as it is.

        Returns:
            The batch, T = the largest number of observed positions of a sample.
        """
        kept = self.observed  # padding is never observed, so it is dropped and rebuilt
        if bool((kept == self.valid).all()):
            return self
        # A stable sort of "is empty" puts each row's kept positions first, in their order.
        order = (~kept).to(torch.uint8).argsort(dim=1, stable=True)
        lengths = kept.sum(dim=1)
        order = order[:, : int(lengths.max())]
        channels = order.unsqueeze(-1).expand(-1, -1, self.channels)
        return IrregularBatch.from_padded(
            self.times.gather(1, order),
            self.values.gather(1, channels),
            self.mask.gather(1, channels),
            lengths,
            targets=self.targets,
            static=self.static,
        )


def collate(series: list[Series], *, targets_required: bool = False) -> IrregularBatch:
    """Pad a list of series into an [`IrregularBatch`][neuralct.data.IrregularBatch].

    Args:
        series: the samples; all with the same number of channels C.
        targets_required: raise when a series has no target.

    Returns:
        The batch, B = `len(series)`, T = the longest series.

    Raises:
        InvalidInputError: an empty list, a series of the wrong shape, a missing target when
            required, or targets/static features given for some series but not others.
    """
    if not series:
        raise InvalidInputError("`series` must hold at least one Series; got an empty list")
    for i, item in enumerate(series):
        _check_series(i, item)
    channels = {item.values.shape[1] for item in series}
    if len(channels) > 1:
        raise InvalidInputError(f"every series must have the same number of channels; got {sorted(channels)}")
    length = max(item.values.shape[0] for item in series)
    values = torch.stack([_pad(item.values, length, float("nan")) for item in series])
    masks = [~torch.isnan(item.values) if item.mask is None else item.mask.bool() for item in series]
    mask = torch.stack([_pad(m, length, False) for m in masks])
    times = torch.stack([_pad(item.times, length, float("nan")) for item in series])
    lengths = torch.tensor([item.values.shape[0] for item in series], device=values.device)
    return IrregularBatch.from_padded(
        times,
        values,
        mask,
        lengths,
        targets=_stack_optional(series, "target", required=targets_required),
        static=_stack_optional(series, "static", required=False),
    )


def pad_times(times: Tensor, lengths: Tensor) -> Tensor:
    """`[B, T]` times whose positions past `lengths[b]` continue the sample's last step.

    Sample b's padded times are $t_{last} + k\\,\\delta_b$, k = 1, 2, ..., with $\\delta_b$ its
    last time step (or 1 for a single observation), so every row is strictly increasing.
    """
    if not isinstance(times, Tensor) or times.ndim != 2 or not times.is_floating_point():
        raise InvalidInputError(f"`times` must be a floating tensor [B, T]; got {describe(times)}")
    length = times.shape[1]
    if bool(((lengths < 1) | (lengths > length)).any()):
        raise InvalidInputError(f"`lengths` must lie in [1, T = {length}]; got {lengths.tolist()}")
    last = (lengths - 1).unsqueeze(1)
    t_last = times.gather(1, last)
    previous = times.gather(1, (last - 1).clamp_min(0))
    step = torch.where(last > 0, t_last - previous, torch.ones_like(t_last))
    positions = torch.arange(length, device=times.device).unsqueeze(0)
    continued = t_last + (positions - last).to(times.dtype) * step
    return torch.where(positions <= last, times, continued)


def _valid(lengths: Tensor, length: int) -> Tensor:
    return torch.arange(length, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def _pad(tensor: Tensor, length: int, fill: float | bool) -> Tensor:
    missing = length - tensor.shape[0]
    if missing == 0:
        return tensor
    padding = torch.full((missing,) + tuple(tensor.shape[1:]), fill, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([tensor, padding])


def _stack_optional(series: list[Series], name: str, required: bool) -> Tensor | None:
    items = [getattr(item, name) for item in series]
    present = [item is not None for item in items]
    if required and not all(present):
        raise InvalidInputError(f"series {present.index(False)} has no `{name}`, but targets are required")
    if not any(present):
        return None
    if not all(present):
        raise InvalidInputError(f"`{name}` is given for some series but not for series {present.index(False)}")
    return torch.stack([torch.as_tensor(item) for item in items])


def _check_series(i: int, item: Series) -> None:
    if not isinstance(item, Series):
        raise InvalidInputError(f"`series[{i}]` must be a Series; got {describe(item)}")
    times, values = item.times, item.values
    if not isinstance(values, Tensor) or values.ndim != 2 or values.shape[0] == 0:
        raise InvalidInputError(f"`series[{i}].values` must be a non-empty tensor [T, C]; got {describe(values)}")
    if not isinstance(times, Tensor) or times.shape != values.shape[:1]:
        raise InvalidInputError(
            f"`series[{i}].times` must be a tensor [T] with T = {values.shape[0]}; got {describe(times)}"
        )
    if item.mask is not None and (not isinstance(item.mask, Tensor) or item.mask.shape != values.shape):
        raise InvalidInputError(
            f"`series[{i}].mask` must have the shape of its values {tuple(values.shape)}; got {describe(item.mask)}"
        )


def _check_shapes(batch: IrregularBatch) -> None:
    values, times, mask, lengths = batch.values, batch.times, batch.mask, batch.lengths
    if not isinstance(values, Tensor) or values.ndim != 3 or not values.is_floating_point():
        raise InvalidInputError(f"`values` must be a floating tensor [B, T, C]; got {describe(values)}")
    b, t, _ = values.shape
    if b == 0 or t == 0:
        raise InvalidInputError(f"`values` must have B >= 1 and T >= 1; got {tuple(values.shape)}")
    if not isinstance(times, Tensor) or times.shape != (b, t) or not times.is_floating_point():
        raise InvalidInputError(f"`times` must be a floating tensor [{b}, {t}]; got {describe(times)}")
    if torch.finfo(times.dtype).bits < torch.finfo(values.dtype).bits:
        raise InvalidInputError(f"`times` ({times.dtype}) must be at least as precise as `values` ({values.dtype})")
    if not isinstance(mask, Tensor) or mask.shape != values.shape or mask.dtype != torch.bool:
        raise InvalidInputError(f"`mask` must be a bool tensor of shape {tuple(values.shape)}; got {describe(mask)}")
    if not isinstance(lengths, Tensor) or lengths.shape != (b,) or lengths.dtype != torch.long:
        raise InvalidInputError(f"`lengths` must be a long tensor [{b}]; got {describe(lengths)}")
    for name in ("times", "mask", "lengths", "targets", "static"):
        tensor = getattr(batch, name)
        if tensor is not None and tensor.device != values.device:
            raise InvalidInputError(f"`{name}` is on {tensor.device} but `values` is on {values.device}")
    if batch.targets is not None and (batch.targets.ndim == 0 or batch.targets.shape[0] != b):
        raise InvalidInputError(f"`targets` must have B = {b} rows; got {describe(batch.targets)}")
    if batch.static is not None and (batch.static.ndim != 2 or batch.static.shape[0] != b):
        raise InvalidInputError(f"`static` must be [B = {b}, S]; got {describe(batch.static)}")


def _check_times(times: Tensor) -> None:
    if not bool(torch.isfinite(times).all()):
        b, k = (int(i) for i in (~torch.isfinite(times)).nonzero()[0])
        raise InvalidInputError(f"`times` must be finite; times[{b}, {k}] = {float(times[b, k])}")
    wrong = times.diff(dim=1) <= 0
    if bool(wrong.any()):
        b, k = (int(i) for i in wrong.nonzero()[0])
        raise InvalidInputError(
            f"`times` must be strictly increasing in every row; sample {b} has "
            f"times[{b}, {k + 1}] = {float(times[b, k + 1]):.6g} after times[{b}, {k}] = {float(times[b, k]):.6g}"
        )


def _check_contents(batch: IrregularBatch) -> None:
    values, mask, lengths = batch.values, batch.mask, batch.lengths
    length = values.shape[1]
    if bool(((lengths < 1) | (lengths > length)).any()):
        raise InvalidInputError(f"`lengths` must lie in [1, T = {length}]; got {lengths.tolist()}")
    if bool((mask & ~_valid(lengths, length).unsqueeze(-1)).any()):
        b = int((mask & ~_valid(lengths, length).unsqueeze(-1)).flatten(1).any(1).nonzero()[0])
        raise InvalidInputError(f"`mask` marks observations in the padding of sample {b} (length {int(lengths[b])})")
    if not bool(torch.isfinite(values[mask]).all()):
        b, k, c = (int(i) for i in (mask & ~torch.isfinite(values)).nonzero()[0])
        raise InvalidInputError(f"observed values must be finite; values[{b}, {k}, {c}] = {float(values[b, k, c])}")
    if bool((values.masked_fill(mask, 0.0) != 0).any()):
        raise InvalidInputError(
            "`values` must be 0 wherever `mask` is False (use IrregularBatch.from_padded to zero them)"
        )
    empty = ~mask.flatten(1).any(dim=1)
    if bool(empty.any()):
        raise InvalidInputError(f"sample {int(empty.nonzero()[0])} has no observed value")


def check_every_channel_observed(batch: IrregularBatch, what: str = "the batch") -> None:
    """Raise `InvalidInputError` naming the first channel of `batch` `[B, T, C]` that no sample
    observes: a dataset-level check, for what needs every channel's values (statistics)."""
    unseen = ~batch.mask.any(dim=1).any(dim=0)
    if bool(unseen.any()):
        raise InvalidInputError(f"channel {int(unseen.nonzero()[0])} is observed in no sample of {what}")


def check_batch(batch: object, channels: int | None = None) -> IrregularBatch:
    """`batch` unchanged; raise `InvalidInputError` unless it is an `IrregularBatch` `[B, T, C]`
    with C = `channels` (any C when `channels` is None)."""
    check_instance("batch", batch, IrregularBatch)
    if channels is not None and batch.channels != channels:
        raise InvalidInputError(f"`batch` must have {channels} channels (the model's); got {batch.channels}")
    return batch
