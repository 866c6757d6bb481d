"""Brownian motion sampled once on a time grid, for solves whose steps land on that grid."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .._validate import check_finite, check_tensor
from ..errors import InvalidInputError
from .brownian import check_noise_shape, resolve_seed
from .deferred import current_checks

# How to stay on the grid, or leave it.
ADVICE = (
    "Step on the grid (ConstantStep with a multiple of its spacing) or use nct.BrownianPath, "
    "which can be queried anywhere"
)


class BrownianGrid:
    """A batch of Brownian motions sampled at the times of a grid, all at once.

    The increments over the grid cells are drawn in one call, $\\Delta W_k \\sim
    \\mathcal N(0, (t_{k+1} - t_k) I)$, and summed into $W(t_k) - W(t_0)$; a query between two
    grid times is one search, one gather and one subtraction on the device, plus a check that
    the times lie on the grid. A query outside a solve reads that check back at once; inside
    a solve's step the check is noted on the device (`neuralct.paths.deferred`) and read with
    the step loop's own reads, every few steps and at the end, so that a solve does not sync
    the host with the device at every step. A time off the grid raises the same error either
    way, in a solve a few steps after the query that made it.
    That makes it the fast Brownian motion for fixed-step SDE solves (`ConstantStep` whose
    steps land on the grid, or `KnotToKnot` on the grid's knots), where
    [`BrownianPath`][neuralct.BrownianPath] searches its interval tree at every step.
    Unlike a `BrownianPath` it cannot be queried between grid times: refine the grid to
    the finest step you will take (a coarser solve on a sub-grid sees the same path, which
    is how a strong-convergence study compares step sizes).

    Args:
        ts: `[K]` grid shared by the batch or `[B, K]` one grid per sample, strictly
            increasing, K >= 2.
        shape: `(B, M)` (or `(B, *state)` for diagonal noise): the shape of every increment.
        dtype: dtype of the increments (default: `ts`'s dtype).
        seed: a non-negative int; `None` draws one from torch's global generator, so
            `torch.manual_seed` makes the path reproducible too.

    Raises:
        InvalidInputError: a bad grid, shape or seed.
    """

    def __init__(self, ts: Tensor, shape: Sequence[int], *, dtype: torch.dtype | None = None, seed: int | None = None):
        shape = tuple(shape)
        check_noise_shape(shape)
        self._grid = _check_grid(ts, shape[0])
        # [B, 1] how far a query may miss its grid time by rounding; grid cells must be wider
        # than twice that for a query to find its own grid time.
        self._slack = 16 * torch.finfo(ts.dtype).eps * self._grid.abs().amax(dim=1, keepdim=True).clamp_min(1.0)
        if bool((self._grid.diff(dim=1) <= 2 * self._slack).any()):
            raise InvalidInputError(
                f"`ts` is too fine for its dtype {ts.dtype}: grid cells must exceed "
                f"{float(2 * self._slack.max()):.3g} to be told apart from rounding; pass float64 times"
            )
        # [B, K] and [B, K + 1]: the window of times that count as each grid time (the last
        # column of `_lower`, +inf, catches a time past the grid).
        self._upper = self._grid + self._slack
        self._lower = torch.cat([self._grid - self._slack, torch.full_like(self._slack, torch.inf)], dim=1)
        self.seed, self._shape = resolve_seed(seed), shape
        dtype = ts.dtype if dtype is None else dtype
        generator = torch.Generator(device=ts.device).manual_seed(self.seed)
        cells = self._grid.diff(dim=1).to(dtype)
        noise = torch.randn((shape[0], cells.shape[1], *shape[1:]), generator=generator, dtype=dtype, device=ts.device)
        steps = noise * cells.sqrt().reshape(cells.shape + (1,) * (len(shape) - 1))
        # [B, K + 1, *M]: W(t_k) - W(t_0) at every grid time, and W(t_{K-1}) - W(t_0) once more
        # for a time past the grid's end (index K), which a query in a solve gathers until its
        # deferred check is read and raises.
        walk = steps.cumsum(dim=1)
        self._values = torch.cat([torch.zeros_like(steps[:, :1]), walk, walk[:, -1:]], dim=1)

    @property
    def values(self) -> Tensor:
        """`[B, K, *M]` $W(t_k) - W(t_0)$ at every grid time."""
        return self._values[:, :-1]

    @property
    def shape(self) -> tuple[int, ...]:
        """`(B, M)`: the shape of every increment."""
        return self._shape

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the increments."""
        return self._values.dtype

    @property
    def device(self) -> torch.device:
        """Device of the increments."""
        return self._values.device

    @property
    def grid(self) -> Tensor:
        """`[B, K]` the grid times of every sample."""
        return self._grid

    def increment(self, ta: Tensor | float, tb: Tensor | float) -> Tensor:
        """$W(t_b) - W(t_a)$ for every sample, `ta` and `tb` `[B]` (or scalars) on its grid.

        Returns:
            `[B, M]` increments.

        Raises:
            InvalidInputError: a time that is not a grid time of its sample (to a few ulps).
        """
        start, end = self._at(("ta", "tb"), ta, tb).unbind(1)
        return end - start

    def evaluate(self, t: Tensor | float) -> Tensor:
        """$W(t) - W(t_0)$ at `[B]` (or scalar) grid times -> `[B, M]`."""
        return self._at(("t",), t).squeeze(1)

    def _at(self, names: tuple[str, ...], *times: Any) -> Tensor:
        """`[B, Q, *M]` the path at the Q grid times `times` (each `[B]` or a scalar)."""
        index = self._index(names, times)
        values = self._values
        shape = (*index.shape, *values.shape[2:])
        return values.gather(1, index.reshape(*index.shape, *(1,) * (values.ndim - 2)).expand(shape))

    def _index(self, names: tuple[str, ...], times: tuple[Any, ...]) -> Tensor:
        """`[B, Q]` grid index of each sample's times, checked to be on its grid: at once, or,
        inside a solve's step, noted in its `DeferredChecks` and read with the loop's next read."""
        t = self._columns(names, times)
        # The first grid time that t does not exceed by more than the slack: t's own grid time
        # when t is on the grid, and then t is not more than the slack below it either.
        index = torch.searchsorted(self._upper, t)
        on = self._lower.gather(1, index) <= t  # (False for a NaN time)
        if torch.compiler.is_compiling():
            # A compiled step reads no value back: the check runs on the device, a RuntimeError
            # on CPU and a device-side assert on CUDA, without the sample and time it would name.
            torch._assert_async(
                on.all(),
                f"{' and '.join(f'`{n}`' for n in names)} must be times of the BrownianGrid's grid. {ADVICE}",
            )
            return index
        checks = current_checks()
        if checks is None:
            self._check_on_grid(names, t, index, on)
            return index
        checks.note(on, functools.partial(self._check_on_grid, names, t, index, on))
        return index

    def _columns(self, names: tuple[str, ...], times: tuple[Any, ...]) -> Tensor:
        """`[B, Q]` the times `times` (each `[B]` or a scalar, named by `names`) in the grid's
        dtype and device."""
        grid, batch = self._grid, self._grid.shape[0]
        columns = []
        for name, t in zip(names, times):
            if not isinstance(t, Tensor) or t.dtype != grid.dtype or t.device != grid.device or t.requires_grad:
                t = torch.as_tensor(t, dtype=grid.dtype, device=grid.device).detach()
            if t.ndim == 0:
                t = t.expand(batch)
            if t.shape != (batch,):
                raise InvalidInputError(
                    f"`{name}` must be a scalar or [B] with B = {batch}; got shape {tuple(t.shape)}"
                )
            columns.append(t)
        return torch.stack(columns, dim=1)

    def _check_on_grid(self, names: tuple[str, ...], t: Tensor, index: Tensor, on: Tensor) -> None:
        """Raise unless every time `t` `[B, Q]` is on its grid (`on` `[B, Q]`, one read), naming
        the first sample and time off it and the grid time nearest (`index` `[B, Q]`)."""
        if bool(on.all()):
            return
        grid = self._grid
        b, q = (int(i) for i in (~on).nonzero()[0])
        nearest = float(grid[b, min(int(index[b, q]), grid.shape[1] - 1)])
        name = names[q]
        raise InvalidInputError(
            f"`{name}` must be a time of the BrownianGrid's grid; sample {b} asks {name}[{b}] = "
            f"{float(t[b, q]):.9g}, nearest grid time {nearest:.9g}. {ADVICE}"
        )

    def __repr__(self) -> str:
        return f"BrownianGrid(K={self._grid.shape[1]}, shape={self._shape}, dtype={self.dtype}, seed={self.seed})"


def _check_grid(ts: Any, batch: int) -> Tensor:
    """`ts` `[K]` or `[B, K]`, finite and strictly increasing with K >= 2 -> `[B, K]`."""
    ts = check_tensor("ts", ts, floating=True)
    shape = tuple(ts.shape)
    if ts.ndim == 1:
        ts = ts.expand(batch, -1)
    if ts.ndim != 2 or ts.shape[0] != batch or ts.shape[1] < 2:
        raise InvalidInputError(f"`ts` must have shape [K] or [B, K] with B = {batch} and K >= 2; got {shape}")
    check_finite("ts", ts)
    wrong = ts.diff(dim=1) <= 0
    if bool(wrong.any()):
        b, k = (int(i) for i in wrong.nonzero()[0])
        raise InvalidInputError(
            f"`ts` must be strictly increasing along its last dim; ts[{b}, {k + 1}] = {float(ts[b, k + 1]):.6g} "
            f"after ts[{b}, {k}] = {float(ts[b, k]):.6g}"
        )
    return ts.contiguous()
