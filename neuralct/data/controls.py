"""Control paths built from an [`IrregularBatch`][neuralct.data.IrregularBatch], ready for
[`ControlTerm`][neuralct.ControlTerm].

`control_path(batch, kind)` interpolates every sample on its own observation times:

| kind | path | smooth | causal | default fill |
|---|---|---|---|---|
| `"linear"` | piecewise linear (Kidger et al. 2020) | kinks at the knots | yes | `"linear"` |
| `"rectilinear"` | time moves, then values (Morrill et al. 2021) | kinks at the knots | yes, online | `"forward"` |
| `"hermite"` | Hermite cubic with backward differences (Morrill et al. 2021) | $C^1$ | yes | `"forward"` |
| `"limited_hermite"` (default) | the same, with slopes limited near close times | $C^1$ | yes | `"forward"` |
| `"natural"` | natural cubic spline (Kidger et al. 2020) | $C^2$ | no | `"linear"` |

The default `"limited_hermite"` is `"hermite"` except where a gap is much shorter than the
gaps before it: there the backward difference, a secant over the short gap, would start the
next interval with a slope of (value step) / (short gap) and overshoot the data a hundredfold
(see [`CubicPath.limited_hermite`][neuralct.CubicPath.limited_hermite]). To average away
duplicate or near-duplicate times instead, use
[`merge_close_times`][neuralct.data.merge_close_times].

*Causal* means that the path up to a sample's $k$-th observation time does not change when
later observations are appended, so a model can be run online. Missing values are filled per
sample and channel before interpolating: `fill="linear"` draws a line between a channel's
observed neighbours and carries its first (last) observation to the start (end), as torchcde
does; it looks ahead, so it breaks causality wherever a value is missing. `fill="forward"`
carries each channel's last observation forward and puts 0 before its first observation
(normalise the data so that 0 means "no information"); it keeps causal paths causal.

Channels come in the order: time (when `time_channel`), the C data channels, then one
cumulative observation count per data channel (when `count_channels`; Kidger et al. 2020's
"observational intensity": how many times that channel has been observed so far).

Padding never leaks into a sample: the path is held constant outside `[t_0, t_last]` of each
sample (zero derivative there), so a CDE solved over a padded row of `batch.times` ends in the
state it had at the sample's last real time, and each sample's path is the one it would have
alone in a batch.

References:
    Kidger, Morrill, Foster & Lyons, "Neural Controlled Differential Equations for Irregular
    Time Series", NeurIPS 2020.
    Morrill, Kidger, Yang & Lyons, "Neural Controlled Differential Equations for Online
    Prediction Tasks", 2021, arXiv 2106.11028.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .._checks import check_choice, describe
from ..errors import InvalidInputError
from ..paths.interpolation import (
    AbstractPiecewisePath,
    CubicPath,
    LinearPath,
    RectilinearPath,
    fill_forward,
    fill_missing,
)
from .series import IrregularBatch

Kind = Literal["linear", "rectilinear", "hermite", "natural", "limited_hermite"]
Fill = Literal["linear", "forward"]
KINDS: tuple[str, ...] = ("linear", "rectilinear", "hermite", "natural", "limited_hermite")
FILLS: tuple[str, ...] = ("linear", "forward")
_DEFAULT_FILL = {
    "linear": "linear",
    "rectilinear": "forward",
    "hermite": "forward",
    "natural": "linear",
    "limited_hermite": "forward",
}


@dataclass(frozen=True)
class ControlPath:
    """An interpolated control held constant outside each sample's observation window.

    Args:
        path: the interpolant, `C` channels on knots `[B, L]` (for a rectilinear path, its
            doubled knots; see `neuralct.paths.RectilinearPath`).
        start: `[B]` each sample's first observation time.
        end: `[B]` each sample's last real observation time, `end >= start`.
        kind: which interpolation `path` is (one of `KINDS`).
        channel_names: `C` names, e.g. `("time", "value 0", "count 0")`.

    Raises:
        InvalidInputError: a path of the wrong type, `start`/`end` not `[B]` or `end < start`,
            an unknown `kind`, or not as many names as channels.
    """

    path: AbstractPiecewisePath
    start: Tensor
    end: Tensor
    kind: str
    channel_names: tuple[str, ...]

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, KINDS)
        if not isinstance(self.path, AbstractPiecewisePath):
            raise InvalidInputError(f"`path` must be an AbstractPiecewisePath; got {describe(self.path)}")
        batch = self.path.times.shape[0]
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, Tensor) or value.shape != (batch,):
                raise InvalidInputError(f"`{name}` must be a tensor [B = {batch}]; got {describe(value)}")
        if bool((self.end < self.start).any()):
            raise InvalidInputError(
                f"`end` must not precede `start`; got {self.start.tolist()} and {self.end.tolist()}"
            )
        if len(self.channel_names) != self.path.channels:
            raise InvalidInputError(
                f"`channel_names` must name the {self.path.channels} channels; got {len(self.channel_names)} names"
            )

    @property
    def channels(self) -> int:
        """Number of channels C."""
        return self.path.channels

    def evaluate(self, t: Tensor | float) -> Tensor:
        """$X(t)$ at `t` `[]`, `[B]` or `[B, K]`, clamped to `[start, end]`; returns `[B, C]` or `[B, K, C]`."""
        t, start, end = self._query(t)
        return self.path.evaluate(torch.minimum(torch.maximum(t, start), end))

    def derivative(self, t: Tensor | float) -> Tensor:
        """$\\dot X(t)$ at `t` `[]`, `[B]` or `[B, K]`: the interpolant's inside `[start, end)`
        (right derivative at a knot), 0 outside; returns `[B, C]` or `[B, K, C]`."""
        t, start, end = self._query(t)
        inside = ((t >= start) & (t < end)).unsqueeze(-1)
        slope = self.path.derivative(t)
        return torch.where(inside, slope, torch.zeros_like(slope))

    def jump_times(self) -> Tensor:
        """`[B, L - 1]` every knot after the first, for solvers to step onto. Linear and
        rectilinear paths have kinks there, cubic ones a jump in the second derivative; every
        kind stops moving at `end`. Knots past `end` (padding) are harmless: nothing moves there."""
        return self.path.times[:, 1:]

    def _query(self, t: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
        """`t` as a `[B]` or `[B, K]` tensor, with `start` and `end` broadcast to it."""
        batch = self.start.shape[0]
        t = torch.as_tensor(t, device=self.start.device, dtype=None if isinstance(t, Tensor) else self.start.dtype)
        if t.ndim == 0:
            t = t.expand(batch)
        if t.ndim not in (1, 2) or t.shape[0] != batch:
            raise InvalidInputError(f"`t` must be a scalar, [B] or [B, K] with B = {batch}; got shape {tuple(t.shape)}")
        dtype = torch.promote_types(t.dtype, self.start.dtype)
        start, end = self.start.to(dtype), self.end.to(dtype)
        if t.ndim == 2:
            start, end = start.unsqueeze(1), end.unsqueeze(1)
        return t.to(dtype), start, end


def control_path(
    batch: IrregularBatch,
    kind: Kind = "limited_hermite",
    *,
    time_channel: bool = True,
    count_channels: bool = False,
    fill: Fill | None = None,
) -> ControlPath:
    """Interpolate a batch of irregular series into a control path for a neural CDE.

    Args:
        batch: the padded series; `T >= 2`.
        kind: `"limited_hermite"` (the default: smooth, causal and robust to close times),
            `"hermite"`, `"linear"`, `"rectilinear"` or `"natural"`.
        time_channel: prepend time as channel 0 (required by `"rectilinear"`).
        count_channels: append one cumulative observation count per data channel.
        fill: how missing values are filled, `"linear"` or `"forward"`; `None` takes the kind's
            default (`"forward"` for the causal cubics and `"rectilinear"`, `"linear"` otherwise).

    Returns:
        The path, with `C' = time_channel + C (1 + count_channels)` channels: per-sample
        `evaluate(t)` / `derivative(t)` for `t` `[B]` or `[B, K]`, and `jump_times()`.

    Raises:
        InvalidInputError: `batch` not an `IrregularBatch` or with T < 2, an unknown `kind` or
            `fill`, or a rectilinear path without `time_channel`.
    """
    _check_arguments(batch, kind, time_channel, count_channels, fill)
    fill = _DEFAULT_FILL[kind] if fill is None else fill
    clock = time_channel and kind != "rectilinear"  # a rectilinear path adds time itself
    data, names = _channels(batch, fill, clock, count_channels)
    if kind == "rectilinear":
        names = ("time",) + names
    path = _interpolate(kind, data, batch)
    return ControlPath(path, batch.times[:, 0], batch.last_time, kind, names)


def _interpolate(kind: str, data: Tensor, batch: IrregularBatch) -> AbstractPiecewisePath:
    if kind == "linear":
        return LinearPath(data, batch.times)
    if kind == "rectilinear":
        return RectilinearPath(data, batch.times)
    if kind == "hermite":
        return CubicPath.hermite(data, batch.times)
    if kind == "limited_hermite":
        return CubicPath.limited_hermite(data, batch.times)
    return CubicPath.natural(data, batch.times, lengths=batch.lengths)


def _channels(batch: IrregularBatch, fill: str, clock: bool, counts: bool) -> tuple[Tensor, tuple[str, ...]]:
    """`[B, T, C']` filled data channels (no NaN) and their names."""
    values = batch.with_nan()
    if fill == "linear":
        filled = fill_missing(values, batch.times)
    else:
        filled = fill_forward(values)
        filled = torch.where(filled.isnan(), torch.zeros_like(filled), filled)
    parts, names = [filled], tuple(f"value {c}" for c in range(batch.channels))
    if clock:
        # Held at the last real time over the padding, like every other channel.
        time = torch.minimum(batch.times, batch.last_time.unsqueeze(1)).to(values.dtype)
        parts, names = [time.unsqueeze(-1)] + parts, ("time",) + names
    if counts:
        parts.append(batch.mask.cumsum(dim=1).to(values.dtype))
        names = names + tuple(f"count {c}" for c in range(batch.channels))
    return torch.cat(parts, dim=-1), names


def _check_arguments(batch: object, kind: object, time_channel: object, count_channels: object, fill: object) -> None:
    if not isinstance(batch, IrregularBatch):
        raise InvalidInputError(f"`batch` must be an IrregularBatch (see neuralct.data.collate); got {describe(batch)}")
    if batch.max_length < 2:
        raise InvalidInputError(
            f"`batch` must have T >= 2 observation times to interpolate; got T = {batch.max_length}"
        )
    check_choice("kind", kind, KINDS)
    check_choice("fill", fill, (None, *FILLS))
    for name, flag in (("time_channel", time_channel), ("count_channels", count_channels)):
        if not isinstance(flag, bool):
            raise InvalidInputError(f"`{name}` must be True or False; got {flag!r}")
    if kind == "rectilinear" and not time_channel:
        raise InvalidInputError(
            "`time_channel` must be True for kind='rectilinear': its path moves time and values in turn"
        )


__all__ = ["FILLS", "KINDS", "ControlPath", "control_path"]
