"""Control paths that interpolate observations, evaluated at per-sample times.

A path $X$ through observations $x_0, \\dots, x_{L-1}$ at knots $t_0 < \\dots < t_{L-1}$ is
stored as one polynomial per interval in powers of $s = t - t_i$,
$X(t) = \\sum_{p} c_{i,p}\\, s^p$ on $[t_i, t_{i+1})$. Knot grids may differ between samples
(`times` `[B, L]`), and `evaluate` / `derivative` take one time per sample (`[B]`) or several
(`[B, K]`): the interval of each query is found by one batched `searchsorted` and its
coefficients by one gather, with no loop over the batch. Outside $[t_0, t_{L-1}]$ the first
and last pieces are extended. Pieces are closed on the left, so at a knot the derivative is
that of the piece starting there.

Missing observations are NaN and are filled per sample and channel as torchcde does: linearly
between observed neighbours, with the first (last) observation carried to the start (end)
and a never-observed channel set to 0. `RectilinearPath` carries observations forward
instead (`fill_forward`). Filling backwards or between neighbours uses the future, so causal
models should fill the values themselves (`neuralct.data.controls.control_path` does, with
`fill="forward"`) and impute the start of every channel.

The coefficient routines live in `neuralct.paths._splines`.

References:
    Kidger, Morrill, Foster & Lyons, "Neural Controlled Differential Equations for Irregular
    Time Series", NeurIPS 2020 (natural cubic splines, linear interpolation).
    Morrill, Kidger, Yang & Lyons, "Neural Controlled Differential Equations for Online
    Prediction Tasks", 2021, arXiv 2106.11028 (Hermite cubic with backward differences,
    rectilinear interpolation, causality).
    Fritsch & Carlson, "Monotone Piecewise Cubic Interpolation", SIAM J. Numer. Anal. 17(2),
    1980 (slopes of at most three secants; the limit of the limited Hermite cubic).
"""

from __future__ import annotations

import abc
import copy
from typing import ClassVar

import torch
import torchcde
from torch import Tensor

from .._checks import describe
from ..errors import InvalidInputError
from ._splines import (
    fill_forward,
    fill_missing,
    hermite_coeffs,
    limited_hermite_coeffs,
    linear_coeffs,
    natural_coeffs,
    rectilinear_knots,
)


class AbstractPiecewisePath(abc.ABC):
    """A piecewise-polynomial control path on per-sample knot grids.

    Args:
        times: `[L]` shared or `[B, L]` per-sample knots, rows strictly increasing, L >= 2.
            They keep their own dtype (e.g. float64 over float32 values).
        coeffs: `[B, L - 1, P, C]` coefficients of $s^0, \\dots, s^{P-1}$ on each interval.

    Attributes:
        times: `[B, L]` knots. coeffs: `[B, L - 1, P, C]`.
    """

    batched_times: ClassVar[bool] = True  # `derivative` takes `[B, K]` times (see `PerSamplePath`)

    def __init__(self, times: Tensor, coeffs: Tensor):
        if not isinstance(coeffs, Tensor) or coeffs.ndim != 4 or not coeffs.is_floating_point():
            raise InvalidInputError(f"`coeffs` must be a floating tensor [B, L - 1, P, C]; got {describe(coeffs)}")
        self.times = check_knots(times, coeffs.shape[0], coeffs.shape[1] + 1, coeffs.device)
        self.coeffs = coeffs

    @property
    def channels(self) -> int:
        """Number of channels C."""
        return self.coeffs.shape[-1]

    @property
    def interval(self) -> Tensor:
        """`[B, 2]` first and last knot of each sample."""
        return self.times[:, [0, -1]]

    def rows(self, index: Tensor) -> AbstractPiecewisePath:
        """The same path for the samples `index` `[b]`: knots `[b, L]`, coefficients
        `[b, L - 1, P, C]`."""
        view = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, Tensor) and value.ndim >= 2 and value.shape[0] == self.coeffs.shape[0]:
                setattr(view, name, value.index_select(0, index))
        return view

    @abc.abstractmethod
    def jump_times(self) -> Tensor | None:
        """`[B, J]` times where the derivative jumps (solvers step onto them), or `None`."""

    def evaluate(self, t: Tensor | float) -> Tensor:
        """$X(t)$ at `t` of shape `[]`, `[B]` or `[B, K]`; returns `[B, C]` or `[B, K, C]`."""
        coeffs, s, shape = self._locate(t)
        value = coeffs[..., -1, :]
        for p in range(coeffs.shape[-2] - 2, -1, -1):
            value = coeffs[..., p, :] + s * value
        return value.reshape(shape + (self.channels,))

    def derivative(self, t: Tensor | float) -> Tensor:
        """$\\dot X(t)$ at `t` of shape `[]`, `[B]` or `[B, K]`; returns `[B, C]` or `[B, K, C]`."""
        coeffs, s, shape = self._locate(t)
        degree = coeffs.shape[-2] - 1
        if degree == 0:
            return torch.zeros_like(coeffs[..., 0, :]).reshape(shape + (self.channels,))
        value = degree * coeffs[..., -1, :]
        for p in range(degree - 1, 0, -1):
            value = p * coeffs[..., p, :] + s * value
        return value.reshape(shape + (self.channels,))

    def _locate(self, t: Tensor | float) -> tuple[Tensor, Tensor, tuple[int, ...]]:
        """Coefficients `[B, K, P, C]` of the piece holding each query, `s` `[B, K, 1]`, query shape."""
        times = self.times
        batch = times.shape[0]
        t = torch.as_tensor(t, device=times.device, dtype=None if isinstance(t, Tensor) else times.dtype)
        if not t.is_floating_point():
            t = t.to(times.dtype)
        if t.ndim == 0:
            t = t.expand(batch)
        if t.ndim not in (1, 2) or t.shape[0] != batch:
            raise InvalidInputError(f"`t` must be a scalar, [B] or [B, K] with B = {batch}; got shape {tuple(t.shape)}")
        shape = tuple(t.shape)
        query, knots = t.reshape(batch, -1), times
        if query.dtype != knots.dtype:
            dtype = torch.promote_types(query.dtype, knots.dtype)
            query, knots = query.to(dtype), knots.to(dtype)
        index = torch.searchsorted(knots, query.detach().contiguous(), right=True).sub_(1)
        index = index.clamp_(0, knots.shape[1] - 2)
        s = query - knots.gather(1, index)
        if s.dtype != self.coeffs.dtype:
            s = s.to(self.coeffs.dtype)
        # One gather of each query's piece: [B, K, P * C] -> [B, K, P, C].
        flat = self.coeffs.flatten(2)
        pieces = flat.gather(1, index.unsqueeze(-1).expand(-1, -1, flat.shape[-1])).unflatten(2, self.coeffs.shape[2:])
        return pieces, s.unsqueeze(-1), shape


class LinearPath(AbstractPiecewisePath):
    """Piecewise-linear interpolation of the observations.

    Its derivative jumps at every interior knot, so `jump_times` declares them and the
    solver lands on each knot instead of stepping across it (which would make adaptive
    solvers crawl). Causal: $X$ on $[t_0, t_k]$ depends on $x_0, \\dots, x_k$ only (without
    NaNs; see the module notes on missing values).

    Args:
        values: `[B, L, C]` observations, NaN where missing.
        times: `[L]` or `[B, L]` strictly increasing knots; default `0, 1, ..., L - 1`.

    Example:
        >>> path = LinearPath(torch.randn(4, 10, 3), torch.linspace(0, 1, 10))
        >>> path.evaluate(torch.full((4,), 0.5)).shape
        torch.Size([4, 3])
    """

    def __init__(self, values: Tensor, times: Tensor | None = None):
        values, times = _prepare(values, times)
        super().__init__(times, linear_coeffs(fill_missing(values, times), times))

    def jump_times(self) -> Tensor:
        """`[B, L - 2]` interior knots."""
        return self.times[:, 1:-1]


class RectilinearPath(AbstractPiecewisePath):
    """Rectilinear interpolation (Morrill et al. 2021): from one observation to the next, first
    time moves with the values held, then the values move with time held.

    Between observations $(t_i, x_i)$ and $(t_{i+1}, x_{i+1})$ the path with time as channel 0
    goes $(t_i, x_i) \\to (t_{i+1}, x_i) \\to (t_{i+1}, x_{i+1})$ along two straight segments. The
    second segment is vertical in time, so the path cannot be a function of time: it lives on a
    *parameter* $s$, and the path doubles the knots.

    **Convention.** The parameter equals real time at every observation: $s = t_i$ is the point
    $(t_i, x_i)$, and the extra knot $s = m_i = (t_i + t_{i+1}) / 2$ is the corner
    $(t_{i+1}, x_i)$. So `times` (the knots `[B, 2 L - 1]` $t_0, m_0, t_1, \\dots, t_{L-1}$) keep
    each sample's own observation times, a CDE driven by this path is solved over the same
    per-sample `t` as for the other interpolations, and its state at $s = t_i$ has seen
    $x_0, \\dots, x_i$. On $[t_i, m_i]$ the time channel runs at speed 2 from $t_i$ to $t_{i+1}$;
    on $[m_i, t_{i+1}]$ the values move. Where the corner sits does not matter: a CDE's solution
    at the knots is invariant under reparameterisation of its control. torchcde's
    `linear_interpolation_coeffs(x, rectilinear=0)` builds the same points on the integer
    parameter $s = 0, 1, \\dots, 2 L - 2$.

    Causal in the online sense: $X$ on $[t_0, m_i]$ depends on $x_0, \\dots, x_i$ and on the time
    $t_{i+1}$ of the next observation, never on its value. Missing values (NaN) are carried
    forward; NaNs before a channel's first observation take that first observation, as in
    torchcde (not causal: fill the start of every channel yourself where it matters).

    Args:
        values: `[B, L, C]` observations, NaN where missing (time is *not* among them).
        times: `[L]` or `[B, L]` strictly increasing observation times; default `0, 1, ..., L - 1`.

    Attributes:
        times: `[B, 2 L - 1]` knots on the parameter. coeffs: `[B, 2 L - 2, 2, 1 + C]`, channel 0
            being time. observation_times: `[B, L]`.

    Example:
        >>> path = RectilinearPath(torch.randn(4, 10, 3), torch.linspace(0, 1, 10))
        >>> path.evaluate(torch.full((4,), 0.5)).shape  # time and 3 value channels
        torch.Size([4, 4])
    """

    def __init__(self, values: Tensor, times: Tensor | None = None):
        values, times = _prepare(values, times)
        knots, points = rectilinear_knots(fill_missing(fill_forward(values), times), times)
        super().__init__(knots, linear_coeffs(points, knots))
        self.observation_times = times

    def jump_times(self) -> Tensor:
        """`[B, 2 L - 3]` interior knots (observation times and corners)."""
        return self.times[:, 1:-1]


class CubicPath(AbstractPiecewisePath):
    """Piecewise-cubic interpolation: natural cubic spline or Hermite cubic with (limited) backward
    differences. Build it with `CubicPath.natural`, `CubicPath.hermite`,
    `CubicPath.limited_hermite` or `CubicPath.from_torchcde`; the constructor takes coefficients
    (see `AbstractPiecewisePath`) with `P = 4`.

    All three are continuously differentiable, so no jump times are declared.
    """

    def __init__(self, times: Tensor, coeffs: Tensor):
        super().__init__(times, coeffs)
        if coeffs.shape[2] != 4:
            raise InvalidInputError(
                f"`coeffs` of a CubicPath must have P = 4 in [B, L - 1, P, C]; got {tuple(coeffs.shape)}"
            )

    def jump_times(self) -> None:
        """`None`: a cubic path is continuously differentiable."""
        return None

    @classmethod
    def hermite(cls, values: Tensor, times: Tensor | None = None) -> CubicPath:
        """Hermite cubic with backward differences (Morrill et al. 2021).

        On $[t_i, t_{i+1}]$ the cubic matches $x_i$, $x_{i+1}$, the slope $m_{i-1}$ at $t_i$ and
        $m_i$ at $t_{i+1}$, where $m_i = (x_{i+1} - x_i) / (t_{i+1} - t_i)$ and $m_{-1} = m_0$. It is
        causal: $X$ on $[t_0, t_k]$ depends on $x_0, \\dots, x_k$ only. Same coefficients as
        `torchcde.hermite_cubic_coefficients_with_backward_differences`, also on per-sample grids.

        Args:
            values: `[B, L, C]` observations, NaN where missing.
            times: `[L]` or `[B, L]` knots; default `0, 1, ..., L - 1`.
        """
        values, times = _prepare(values, times)
        return cls(times, hermite_coeffs(fill_missing(values, times), times))

    @classmethod
    def limited_hermite(cls, values: Tensor, times: Tensor | None = None) -> CubicPath:
        """Hermite cubic with limited backward differences: robust to near-coincident times.

        With backward differences a gap $\\epsilon$ much shorter than the next one hands the
        secant $m_i = \\Delta x_i / \\epsilon$ to the next interval as its starting slope, and the
        path overshoots by about $\\tfrac{4}{27} (t_{i+2} - t_{i+1}) |m_i|$ (hundreds of times
        the data's scale at $\\epsilon$ = 3e-5). Here the slope at $t_{i+1}$ is $m_i$ clipped to
        $\\pm 3 S_i / H_i$, with $S_i$ the largest $|\\Delta x_j|$ and $H_i$ the longest gap over
        the last 4 intervals $j \\le i$: three times the steepest secant at the longest recent
        gap, as Fritsch & Carlson bound a monotone cubic's slopes by three secants. The clip
        binds only where a gap is below a third of the longest of the three before it, so on a
        regular enough grid this is `CubicPath.hermite` bit for bit; next to a cluster of up to
        4 observations much closer than their neighbours it stays near the data (in the tests,
        within 1.5x of their largest value, where backward differences reach 1000x). Causal,
        like the unlimited cubic: each slope depends on earlier observations only, and $X$ on
        $[t_0, t_k]$ on $x_0, \\dots, x_k$ only. The slope at $t_1$ has no earlier gap to be
        compared with and is not limited: merge a near-coincident first pair
        (`neuralct.data.merge_close_times`).

        Args:
            values: `[B, L, C]` observations, NaN where missing.
            times: `[L]` or `[B, L]` knots; default `0, 1, ..., L - 1`.
        """
        values, times = _prepare(values, times)
        return cls(times, limited_hermite_coeffs(fill_missing(values, times), times))

    @classmethod
    def natural(cls, values: Tensor, times: Tensor | None = None, lengths: Tensor | None = None) -> CubicPath:
        """Natural cubic spline (Kidger et al. 2020): twice continuously differentiable, zero
        second derivative at both ends. Not causal: every piece depends on every observation.

        On a shared grid without `lengths` this uses `torchcde.natural_cubic_coeffs` (which skips
        missing values when fitting). Otherwise the tridiagonal system for the knot slopes is
        solved for the whole batch at once; missing values are not supported there.

        Args:
            values: `[B, L, C]` observations, NaN where missing (shared grids only).
            times: `[L]` or `[B, L]` knots; default `0, 1, ..., L - 1`.
            lengths: `[B]` integers in `[1, L]`, or `None` for all L: sample b is the spline
                through its first `lengths[b]` knots alone (natural at its last real knot), held
                constant after them, whatever the padded values.

        Raises:
            InvalidInputError: NaN values on a per-sample grid or with `lengths`; bad `lengths`.
        """
        values, times = _prepare(values, times)
        if lengths is None and bool((times == times[:1]).all()):
            grid = times[0].to(values.dtype)
            return cls.from_torchcde(torchcde.natural_cubic_coeffs(values, grid), times)
        if bool(values.isnan().any()):
            raise InvalidInputError(
                "`CubicPath.natural` supports missing (NaN) values only on a shared time grid without `lengths`; "
                "use a shared grid, fill the values first, or use CubicPath.hermite"
            )
        if lengths is not None:
            batch, length = values.shape[:2]
            if not isinstance(lengths, Tensor) or lengths.shape != (batch,) or lengths.is_floating_point():
                raise InvalidInputError(f"`lengths` must be an integer tensor [{batch}]; got {describe(lengths)}")
            if bool(((lengths < 1) | (lengths > length)).any()):
                raise InvalidInputError(f"`lengths` must lie in [1, L = {length}]; got {lengths.tolist()}")
            lengths = lengths.to(device=values.device, dtype=torch.long)
        return cls(times, natural_coeffs(values, times, lengths))

    @classmethod
    def from_torchcde(cls, coeffs: Tensor, times: Tensor | None = None) -> CubicPath:
        """Wrap cubic coefficients in torchcde's layout (as from `torchcde.natural_cubic_coeffs`
        or `hermite_cubic_coefficients_with_backward_differences`).

        Args:
            coeffs: `[B, L - 1, 4 C]` holding $a, b, 2c, 3d$ of $a + b s + c s^2 + d s^3$.
            times: the `[L]` or `[B, L]` knots they were computed on; default `0, ..., L - 1`.
        """
        if not isinstance(coeffs, Tensor) or coeffs.ndim != 3 or coeffs.shape[-1] % 4:
            raise InvalidInputError(
                f"`coeffs` must be torchcde cubic coefficients [B, L - 1, 4 C]; got {describe(coeffs)}"
            )
        if times is None:
            times = torch.arange(coeffs.shape[1] + 1, dtype=coeffs.dtype, device=coeffs.device)
        a, b, two_c, three_d = coeffs.reshape(coeffs.shape[:2] + (4, -1)).unbind(dim=2)
        return cls(times, torch.stack([a, b, two_c / 2, three_d / 3], dim=2))


def check_knots(times: object, batch: int, length: int, device: torch.device) -> Tensor:
    """Broadcast knots `[L]` or `[B, L]` to `[B, L]`, checking they are finite and strictly increasing."""
    if not isinstance(times, Tensor) or not times.is_floating_point():
        raise InvalidInputError(f"`times` must be a floating tensor [L] or [B, L]; got {describe(times)}")
    if times.device != device:
        raise InvalidInputError(f"`times` is on {times.device} but the values are on {device}")
    if times.ndim == 1:
        times = times.expand(batch, -1)
    if times.ndim != 2 or times.shape != (batch, length):
        raise InvalidInputError(f"`times` must have shape [{length}] or [{batch}, {length}]; got {tuple(times.shape)}")
    if length < 2:
        raise InvalidInputError(f"a path needs at least 2 observations; got L = {length}")
    if not bool(torch.isfinite(times).all()):
        raise InvalidInputError("`times` must be finite (pad shorter series by repeating values, not with NaN times)")
    wrong = (times.diff(dim=1) <= 0).nonzero()
    if len(wrong):
        b, k = (int(i) for i in wrong[0])
        raise InvalidInputError(
            f"`times` must be strictly increasing along dim 1; sample {b} has "
            f"times[{b}, {k + 1}] = {float(times[b, k + 1]):.6g} after times[{b}, {k}] = {float(times[b, k]):.6g}"
        )
    return times.contiguous()


def _prepare(values: Tensor, times: Tensor | None) -> tuple[Tensor, Tensor]:
    """Check `values` `[B, L, C]` and return it with `[B, L]` knots."""
    if not isinstance(values, Tensor) or values.ndim != 3 or not values.is_floating_point():
        raise InvalidInputError(f"`values` must be a floating tensor [B, L, C]; got {describe(values)}")
    if times is None:
        times = torch.arange(values.shape[1], dtype=values.dtype, device=values.device)
    return values, check_knots(times, values.shape[0], values.shape[1], values.device)


__all__ = [
    "AbstractPiecewisePath",
    "CubicPath",
    "LinearPath",
    "RectilinearPath",
    "check_knots",
    "fill_forward",
    "fill_missing",
]
