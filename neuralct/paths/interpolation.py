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
and a never-observed channel set to 0. Filling backwards uses the future, so causal models
should impute the start of every channel themselves.

References:
    Kidger, Morrill, Foster & Lyons, "Neural Controlled Differential Equations for Irregular
    Time Series", NeurIPS 2020 (natural cubic splines, linear interpolation).
    Morrill, Kidger, Yang & Lyons, "Neural Controlled Differential Equations for Online
    Prediction Tasks", 2021, arXiv 2106.11028 (Hermite cubic with backward differences, causality).
"""

from __future__ import annotations

import abc

import torch
import torchcde
from torch import Tensor

from ..errors import InvalidInputError


class AbstractPiecewisePath(abc.ABC):
    """A piecewise-polynomial control path on per-sample knot grids.

    Args:
        times: `[L]` shared or `[B, L]` per-sample knots, rows strictly increasing, L >= 2.
            They keep their own dtype (e.g. float64 over float32 values).
        coeffs: `[B, L - 1, P, C]` coefficients of $s^0, \\dots, s^{P-1}$ on each interval.

    Attributes:
        times: `[B, L]` knots. coeffs: `[B, L - 1, P, C]`.
    """

    def __init__(self, times: Tensor, coeffs: Tensor):
        if not isinstance(coeffs, Tensor) or coeffs.ndim != 4 or not coeffs.is_floating_point():
            raise InvalidInputError(f"`coeffs` must be a floating tensor [B, L - 1, P, C]; got {_describe(coeffs)}")
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
        dtype = torch.promote_types(t.dtype, times.dtype)
        query = t.reshape(batch, -1).to(dtype)
        knots = times.to(dtype)
        index = torch.searchsorted(knots, query.detach().contiguous(), right=True) - 1
        index = index.clamp(0, knots.shape[1] - 2)
        s = (query - knots.gather(1, index)).to(self.coeffs.dtype).unsqueeze(-1)
        rows = torch.arange(batch, device=times.device)[:, None]
        return self.coeffs[rows, index], s, shape


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
        x = fill_missing(values, times)
        slope = x.diff(dim=1) / _widths(times, x.dtype)
        super().__init__(times, torch.stack([x[:, :-1], slope], dim=2))

    def jump_times(self) -> Tensor:
        """`[B, L - 2]` interior knots."""
        return self.times[:, 1:-1]


class CubicPath(AbstractPiecewisePath):
    """Piecewise-cubic interpolation: natural cubic spline or Hermite cubic with backward
    differences. Build it with `CubicPath.natural`, `CubicPath.hermite` or
    `CubicPath.from_torchcde`; the constructor takes coefficients
    (see `AbstractPiecewisePath`) with `P = 4`.

    Both interpolants are continuously differentiable, so no jump times are declared.
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
        x = fill_missing(values, times)
        width = _widths(times, x.dtype)
        slope = x.diff(dim=1) / width
        change = slope - torch.cat([slope[:, :1], slope[:, :-1]], dim=1)
        coeffs = torch.stack([x[:, :-1], slope - change, 2 * change / width, -change / width.square()], dim=2)
        return cls(times, coeffs)

    @classmethod
    def natural(cls, values: Tensor, times: Tensor | None = None) -> CubicPath:
        """Natural cubic spline (Kidger et al. 2020): twice continuously differentiable, zero
        second derivative at both ends. Not causal: every piece depends on every observation.

        On a shared grid this uses `torchcde.natural_cubic_coeffs` (which skips missing values
        when fitting). On per-sample grids the tridiagonal system for the knot slopes is solved
        for the whole batch at once; missing values are not supported there.

        Args:
            values: `[B, L, C]` observations, NaN where missing (shared grids only).
            times: `[L]` or `[B, L]` knots; default `0, 1, ..., L - 1`.

        Raises:
            InvalidInputError: NaN values on a per-sample grid.
        """
        values, times = _prepare(values, times)
        if bool((times == times[:1]).all()):
            grid = times[0].to(values.dtype)
            return cls.from_torchcde(torchcde.natural_cubic_coeffs(values, grid), times)
        if bool(values.isnan().any()):
            raise InvalidInputError(
                "`CubicPath.natural` supports missing (NaN) values only on a shared time grid; "
                "use a shared grid, fill the values first, or use CubicPath.hermite"
            )
        return cls(times, _natural_coeffs(values, times))

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
                f"`coeffs` must be torchcde cubic coefficients [B, L - 1, 4 C]; got {_describe(coeffs)}"
            )
        if times is None:
            times = torch.arange(coeffs.shape[1] + 1, dtype=coeffs.dtype, device=coeffs.device)
        a, b, two_c, three_d = coeffs.reshape(coeffs.shape[:2] + (4, -1)).unbind(dim=2)
        return cls(times, torch.stack([a, b, two_c / 2, three_d / 3], dim=2))


def check_knots(times: object, batch: int, length: int, device: torch.device) -> Tensor:
    """Broadcast knots `[L]` or `[B, L]` to `[B, L]`, checking they are finite and strictly increasing."""
    if not isinstance(times, Tensor) or not times.is_floating_point():
        raise InvalidInputError(f"`times` must be a floating tensor [L] or [B, L]; got {_describe(times)}")
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


def fill_missing(values: Tensor, times: Tensor) -> Tensor:
    """Fill NaNs linearly in time between observed neighbours, per sample and channel.

    Leading (trailing) NaNs take the first (last) observed value; a channel with no
    observation becomes 0 (torchcde's convention). Batched: no loop over samples or channels.

    Args:
        values: `[B, L, C]` with NaN where missing. times: `[B, L]`.

    Returns:
        `[B, L, C]` without NaN; observed entries unchanged.
    """
    observed = ~values.isnan()
    if bool(observed.all()):
        return values
    length = values.shape[1]
    position = torch.arange(length, device=values.device).view(1, -1, 1).expand_as(values)
    before = torch.where(observed, position, -1).cummax(dim=1).values
    after = torch.where(observed, position, length).flip(1).cummin(dim=1).values.flip(1)
    has_before, has_after = before >= 0, after < length
    before, after = before.clamp(min=0), after.clamp(max=length - 1)
    clean = torch.where(observed, values, torch.zeros_like(values))
    x0, x1 = clean.gather(1, before), clean.gather(1, after)
    grid = times.unsqueeze(-1).expand(values.shape)
    t0, t1 = grid.gather(1, before), grid.gather(1, after)
    between = has_before & has_after & (after > before)
    width = torch.where(between, t1 - t0, torch.ones_like(t0))
    inside = x0 + ((grid - t0) / width).to(values.dtype) * (x1 - x0)
    edge = torch.where(has_before, x0, torch.where(has_after, x1, torch.zeros_like(x0)))
    return torch.where(observed, values, torch.where(between, inside, edge))


def _prepare(values: Tensor, times: Tensor | None) -> tuple[Tensor, Tensor]:
    """Check `values` `[B, L, C]` and return it with `[B, L]` knots."""
    if not isinstance(values, Tensor) or values.ndim != 3 or not values.is_floating_point():
        raise InvalidInputError(f"`values` must be a floating tensor [B, L, C]; got {_describe(values)}")
    if times is None:
        times = torch.arange(values.shape[1], dtype=values.dtype, device=values.device)
    return values, check_knots(times, values.shape[0], values.shape[1], values.device)


def _widths(times: Tensor, dtype: torch.dtype) -> Tensor:
    """`[B, L - 1, 1]` interval lengths, computed in the time dtype."""
    return times.diff(dim=1).to(dtype).unsqueeze(-1)


def _natural_coeffs(values: Tensor, times: Tensor) -> Tensor:
    """`[B, L - 1, 4, C]` natural cubic spline coefficients on per-sample knots.

    The knot slopes $k$ solve the symmetric tridiagonal system
    $r_{i-1} k_{i-1} + 2 (r_{i-1} + r_i) k_i + r_i k_{i+1} = 3 (r_{i-1}^2 \\Delta x_{i-1} + r_i^2 \\Delta x_i)$
    with $r_i = 1 / (t_{i+1} - t_i)$ (terms with out-of-range indices dropped).
    """
    width = _widths(times, values.dtype)
    inverse = width.reciprocal()
    step = values.diff(dim=1)
    scaled = 3 * step * inverse.square()
    zero = torch.zeros_like(inverse[:, :1])
    diagonal = 2 * (torch.cat([zero, inverse], dim=1) + torch.cat([inverse, zero], dim=1))
    rhs = torch.cat([zero * scaled[:, :1], scaled], dim=1) + torch.cat([scaled, zero * scaled[:, :1]], dim=1)
    k = _solve_tridiagonal(diagonal, inverse, rhs)
    c2 = (3 * step * inverse - 2 * k[:, :-1] - k[:, 1:]) * inverse
    c3 = (-2 * step * inverse + k[:, :-1] + k[:, 1:]) * inverse.square()
    return torch.stack([values[:, :-1], k[:, :-1], c2, c3], dim=2)


def _solve_tridiagonal(diagonal: Tensor, off: Tensor, rhs: Tensor) -> Tensor:
    """Thomas algorithm for a batch of symmetric tridiagonal systems (loops over L only).

    Args:
        diagonal: `[B, L, 1]`; off: `[B, L - 1, 1]` the off-diagonal; rhs: `[B, L, C]`.

    Returns:
        `[B, L, C]` solution. Stable here because the matrix is diagonally dominant.
    """
    length = diagonal.shape[1]
    ratios, partial = [], [rhs[:, 0] / diagonal[:, 0]]
    pivot = diagonal[:, 0]
    for i in range(1, length):
        ratios.append(off[:, i - 1] / pivot)
        pivot = diagonal[:, i] - off[:, i - 1] * ratios[-1]
        partial.append((rhs[:, i] - off[:, i - 1] * partial[-1]) / pivot)
    solution = [partial[-1]]
    for i in range(length - 2, -1, -1):
        solution.append(partial[i] - ratios[i] * solution[-1])
    return torch.stack(solution[::-1], dim=1)


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return type(value).__name__


__all__ = ["AbstractPiecewisePath", "CubicPath", "LinearPath", "check_knots", "fill_missing"]
