"""Coefficient routines of the interpolating paths: filling missing values, and the per-interval
polynomial coefficients `[B, L - 1, P, C]` of linear, Hermite cubic and natural cubic
interpolation, and the knots of rectilinear interpolation, all batched over per-sample knots."""

from __future__ import annotations

import torch
from torch import Tensor

# The limited Hermite slope is at most LIMIT_FACTOR times the steepest secant the last
# LIMIT_WINDOW intervals could have at their longest gap. 3 is Fritsch and Carlson's bound on a
# monotone cubic's end slopes (3 secants); 4 intervals cover a cluster of up to 4 observations.
LIMIT_FACTOR = 3.0
LIMIT_WINDOW = 4


def fill_missing(values: Tensor, times: Tensor) -> Tensor:
    """Fill NaNs linearly in time between observed neighbours, per sample and channel.

    Leading (trailing) NaNs take the first (last) observed value; a channel with no
    observation becomes 0 (torchcde's convention). Batched: no loop over samples or channels.
    Not causal: a gap is filled with the help of the observation after it.

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


def fill_forward(values: Tensor) -> Tensor:
    """Carry the last observation of every channel forward over its NaNs (causal).

    Args:
        values: `[B, L, C]` with NaN where missing.

    Returns:
        `[B, L, C]`: observed entries unchanged, a missing entry equal to the channel's last
        earlier observation, and NaN where the channel has not been observed yet.
    """
    observed = ~values.isnan()
    if bool(observed.all()):
        return values
    position = torch.arange(values.shape[1], device=values.device).view(1, -1, 1).expand_as(values)
    last = torch.where(observed, position, -1).cummax(dim=1).values
    carried = values.gather(1, last.clamp(min=0))
    return torch.where(last >= 0, carried, torch.full_like(values, float("nan")))


def widths(times: Tensor, dtype: torch.dtype) -> Tensor:
    """`[B, L - 1, 1]` interval lengths, computed in the time dtype."""
    return times.diff(dim=1).to(dtype).unsqueeze(-1)


def linear_coeffs(values: Tensor, times: Tensor) -> Tensor:
    """`[B, L - 1, 2, C]` coefficients of the piecewise-linear interpolant of `values` `[B, L, C]`."""
    slope = values.diff(dim=1) / widths(times, values.dtype)
    return torch.stack([values[:, :-1], slope], dim=2)


def hermite_coeffs(values: Tensor, times: Tensor) -> Tensor:
    """`[B, L - 1, 4, C]` coefficients of the Hermite cubic with backward differences.

    On $[t_i, t_{i+1}]$ the cubic matches $x_i$, $x_{i+1}$, the slope $m_{i-1}$ at $t_i$ and $m_i$
    at $t_{i+1}$, where $m_i = (x_{i+1} - x_i) / (t_{i+1} - t_i)$ and $m_{-1} = m_0$.
    """
    width = widths(times, values.dtype)
    slope = values.diff(dim=1) / width
    return _hermite(values, width, slope, slope)


def limited_hermite_coeffs(values: Tensor, times: Tensor) -> Tensor:
    """`[B, L - 1, 4, C]` coefficients of the Hermite cubic with limited backward differences.

    As `hermite_coeffs`, but the slope at $t_{i+1}$ is $m_i$ clipped to $\\pm \\kappa S_i / H_i$,
    with $S_i$ the largest $|x_{j+1} - x_j|$ and $H_i$ the longest gap $t_{j+1} - t_j$ over the
    $w$ intervals $j = i - w + 1, \\dots, i$ ($\\kappa$ = `LIMIT_FACTOR`, $w$ = `LIMIT_WINDOW`;
    see `CubicPath.limited_hermite`). Where the clip does not bind, bit for bit `hermite_coeffs`.
    """
    width = widths(times, values.dtype)
    step = values.diff(dim=1)
    slope = step / width
    bound = LIMIT_FACTOR * _trailing_max(step.abs(), LIMIT_WINDOW) / _trailing_max(width, LIMIT_WINDOW)
    return _hermite(values, width, slope, torch.minimum(torch.maximum(slope, -bound), bound))


def _hermite(values: Tensor, width: Tensor, slope: Tensor, knot_slope: Tensor) -> Tensor:
    """Cubic pieces through `values` `[B, L, C]` with secants `slope` `[B, L - 1, C]` on intervals of
    `width` `[B, L - 1, 1]`, slope `knot_slope[:, i]` at $t_{i + 1}$ and `slope[:, 0]` at $t_0$."""
    # The end slopes as deviations from the secant keep the unlimited case's arithmetic exact.
    start = torch.cat([slope[:, :1], knot_slope[:, :-1]], dim=1) - slope
    end = knot_slope - slope
    cubic = [slope + start, -(2 * start + end) / width, (start + end) / width.square()]
    return torch.stack([values[:, :-1], *cubic], dim=2)


def _trailing_max(tensor: Tensor, window: int) -> Tensor:
    """`[B, N, C]` maximum of `tensor` `[B, N, C]` (non-negative) over positions `i - window + 1 .. i`."""
    padded = torch.nn.functional.pad(tensor, (0, 0, window - 1, 0))  # zeros: never the maximum
    return padded.unfold(1, window, 1).amax(dim=-1)


def rectilinear_knots(values: Tensor, times: Tensor) -> tuple[Tensor, Tensor]:
    """Knots and points of the rectilinear path through `values` `[B, L, C]` at `times` `[B, L]`.

    Returns:
        `(knots, points)`: knots `[B, 2 L - 1]` are $t_0, m_0, t_1, m_1, \\dots, t_{L-1}$ with
        $m_i = (t_i + t_{i+1}) / 2$; points `[B, 2 L - 1, 1 + C]` are $(t_i, x_i)$ at $t_i$ and
        $(t_{i+1}, x_i)$ at $m_i$ (time first, then the values).
    """
    middle = (times[:, :-1] + times[:, 1:]) / 2
    knots = torch.stack([times[:, :-1], middle], dim=2).flatten(1)
    knots = torch.cat([knots, times[:, -1:]], dim=1)
    clock = times.to(values.dtype).unsqueeze(-1)
    points = torch.cat([clock, values], dim=-1).repeat_interleave(2, dim=1)[:, :-1].clone()
    points[:, 1::2, :1] = clock[:, 1:]  # at m_i time has moved on to t_{i+1}, the values not yet
    return knots, points


def natural_coeffs(values: Tensor, times: Tensor, lengths: Tensor | None = None) -> Tensor:
    """`[B, L - 1, 4, C]` natural cubic spline coefficients on per-sample knots.

    The knot slopes $k$ solve the symmetric tridiagonal system
    $r_{i-1} k_{i-1} + 2 (r_{i-1} + r_i) k_i + r_i k_{i+1} = 3 (r_{i-1}^2 \\Delta x_{i-1} + r_i^2 \\Delta x_i)$
    with $r_i = 1 / (t_{i+1} - t_i)$ (terms with out-of-range indices dropped).

    With `lengths` `[B]`, sample b is a spline through its first `lengths[b]` knots only: the
    intervals after them get $r_i = 0$, which decouples them from the system (so the natural end
    condition holds at the last real knot, exactly as if the sample were alone), and they hold
    the value of the last real knot constant.
    """
    width = widths(times, values.dtype)
    inverse = width.reciprocal()
    step = values.diff(dim=1)
    real = None
    if lengths is not None:
        interval = torch.arange(width.shape[1], device=width.device)
        real = (interval[None, :] < (lengths[:, None] - 1)).unsqueeze(-1)
        inverse = torch.where(real, inverse, torch.zeros_like(inverse))
    scaled = 3 * step * inverse.square()
    zero = torch.zeros_like(inverse[:, :1])
    diagonal = 2 * (torch.cat([zero, inverse], dim=1) + torch.cat([inverse, zero], dim=1))
    diagonal = torch.where(diagonal == 0, torch.ones_like(diagonal), diagonal)  # knots with no real interval
    rhs = torch.cat([zero * scaled[:, :1], scaled], dim=1) + torch.cat([scaled, zero * scaled[:, :1]], dim=1)
    k = _solve_tridiagonal(diagonal, inverse, rhs)
    c2 = (3 * step * inverse - 2 * k[:, :-1] - k[:, 1:]) * inverse
    c3 = (-2 * step * inverse + k[:, :-1] + k[:, 1:]) * inverse.square()
    coeffs = torch.stack([values[:, :-1], k[:, :-1], c2, c3], dim=2)
    if real is None:
        return coeffs
    last = values.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, values.shape[-1]))
    constant = torch.stack([last.expand_as(step), *(torch.zeros_like(step),) * 3], dim=2)
    return torch.where(real.unsqueeze(-1), coeffs, constant)


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
