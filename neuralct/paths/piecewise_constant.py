"""A piecewise-constant control path with the zero-order-hold convention of discrete SSMs.

A linear state-space layer run as a recurrence, $x_k = \\bar A_k x_{k-1} + \\bar B_k u_k$ with
$\\bar A_k, \\bar B_k$ the zero-order-hold discretization over $\\Delta_k = t_k - t_{k-1}$, is the
exact solution of $\\dot x = A x + B u(t)$ at the knots when $u$ equals $u_k$ on the whole interval
$(t_{k-1}, t_k]$: each observation is held over the interval that *ends* at it.
`PiecewiseConstantPath` is that input, so the recurrence and a solve of the continuous system
(`neuralct.terms.linear.LinearTerm` with the `ZOH` solver or any Runge-Kutta method) agree.

Reference: Gu et al., "Combining Recurrent, Convolutional, and Continuous-time Models with Linear
State-Space Layers", NeurIPS 2021.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from ..errors import InvalidInputError
from ._splines import fill_forward, fill_missing
from .interpolation import check_knots


class PiecewiseConstantPath:
    """Observations held constant over the interval that ends at them (zero-order hold).

    Convention, with knots $t_0 < \\dots < t_{L-1}$ and observations $u_0, \\dots, u_{L-1}$:

    - $u(t) = u_k$ on $(t_{k-1}, t_k]$, for $k = 1, \\dots, L - 1$: the value over an interval
      is the observation at its **end**, and at a knot the path takes that knot's observation
      (it is continuous from the left);
    - $u(t) = u_0$ for $t \\le t_0$ and $u(t) = u_{L-1}$ for $t > t_{L-1}$.

    So the state of $\\dot x = A x + B u$ at $t_k$ has seen $u_0, \\dots, u_k$ (causal), and it
    equals the LSSL recurrence $x_k = \\bar A_k x_{k-1} + \\bar B_k u_k$ under the zero-order hold.
    The derivative is 0 everywhere (the jumps are not differentiated). The value changes at
    $t_0, \\dots, t_{L-2}$, which `jump_times` declares, so solvers land on them instead of
    stepping across a jump. Solvers that hold the input over a step (`ZOH`, `GBT`) read it at
    the step's midpoint, which does not depend on which side of a knot the path takes.

    Missing values (NaN) are carried forward; NaNs before a channel's first observation take that
    first observation and a never-observed channel is 0 (fill the start yourself where
    causality matters).

    Args:
        values: `[B, L, C]` observations, NaN where missing.
        times: `[L]` or `[B, L]` strictly increasing knots, L >= 2; default `0, 1, ..., L - 1`.
            They keep their own dtype (e.g. float64 over float32 values).

    Attributes:
        values: `[B, L, C]` observations with missing values filled.
        times: `[B, L]` knots.

    Example:
        >>> path = PiecewiseConstantPath(torch.tensor([[[1.0], [2.0], [3.0]]]), torch.tensor([0.0, 1.0, 2.0]))
        >>> path.evaluate(torch.tensor([[0.0, 0.5, 1.0, 1.5, 9.0]])).flatten().tolist()
        [1.0, 2.0, 2.0, 3.0, 3.0]
    """

    batched_times: ClassVar[bool] = True  # `derivative` takes `[B, K]` times (see `PerSamplePath`)

    def __init__(self, values: Tensor, times: Tensor | None = None):
        if not isinstance(values, Tensor) or values.ndim != 3 or not values.is_floating_point():
            got = (
                f"shape {tuple(values.shape)}, {values.dtype}" if isinstance(values, Tensor) else type(values).__name__
            )
            raise InvalidInputError(f"`values` must be a floating tensor [B, L, C]; got {got}")
        if times is None:
            times = torch.arange(values.shape[1], dtype=values.dtype, device=values.device)
        self.times = check_knots(times, values.shape[0], values.shape[1], values.device)
        self.values = fill_missing(fill_forward(values), self.times)

    @property
    def channels(self) -> int:
        """Number of channels C."""
        return self.values.shape[-1]

    def jump_times(self) -> Tensor:
        """`[B, L - 1]` the knots $t_0, \\dots, t_{L-2}$ right after which the value changes."""
        return self.times[:, :-1]

    def evaluate(self, t: Tensor | float) -> Tensor:
        """$u(t)$ at `t` of shape `[]`, `[B]` or `[B, K]`; returns `[B, C]` or `[B, K, C]`."""
        index, shape = self._locate(t)
        rows = torch.arange(index.shape[0], device=index.device)[:, None]
        return self.values[rows, index].reshape(shape + (self.channels,))

    def derivative(self, t: Tensor | float) -> Tensor:
        """0 at `t` of shape `[]`, `[B]` or `[B, K]`; returns `[B, C]` or `[B, K, C]`."""
        _, shape = self._locate(t)
        return self.values.new_zeros(shape + (self.channels,))

    def _locate(self, t: Tensor | float) -> tuple[Tensor, tuple[int, ...]]:
        """`[B, K]` index of the observation held at each query, and the query's shape."""
        times = self.times
        batch = times.shape[0]
        t = torch.as_tensor(t, device=times.device, dtype=None if isinstance(t, Tensor) else times.dtype)
        if t.ndim == 0:
            t = t.expand(batch)
        if t.ndim not in (1, 2) or t.shape[0] != batch:
            raise InvalidInputError(f"`t` must be a scalar, [B] or [B, K] with B = {batch}; got shape {tuple(t.shape)}")
        dtype = torch.promote_types(t.dtype, times.dtype) if t.is_floating_point() else times.dtype
        query = t.reshape(batch, -1).detach().to(dtype).contiguous()
        # right=False counts the knots strictly before t: u_k on (t_{k-1}, t_k], u_0 up to t_0.
        index = torch.searchsorted(times.to(dtype), query, right=False)
        return index.clamp_max(times.shape[1] - 1), tuple(t.shape)


__all__ = ["PiecewiseConstantPath"]
