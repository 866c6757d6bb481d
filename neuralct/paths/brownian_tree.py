"""A virtual Brownian tree: Brownian motion whose value at any time depends on its seed alone.

Adaptive SDE solves query the Brownian motion at times that depend on the tolerance, on
rejected steps and on each sample's own errors. torchsde's `BrownianInterval` (behind
[`BrownianPath`][neuralct.BrownianPath]) splits its tree at the queried times, so its
realisation depends on that query sequence, and per-sample times are one query of the whole
batch each; its dyadic `halfway_tree` mode fixes the first but not the second and costs
about 4 ms per query on a CPU. This tree is evaluated for every sample at its own time in
one batched pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .._checks import check_int
from ..errors import InvalidInputError
from .brownian import LevyArea, _check_number, check_noise_shape, query_times, resolve_seed

_M32 = 0xFFFFFFFF
_STREAMS = (0x68E31DA4, 0xB5297A4D)  # one per normal of a node (the two Box-Muller uniforms)


class BrownianTree:
    """A batch of Brownian motions on $[t_0, t_1]$ as a virtual dyadic Brownian tree.

    The interval is halved `depth` times. Each node's increment $\\Delta W$ and space-time
    Lévy area $H$ are split between its halves by the exact conditional law (Foster,
    Lyons & Oberhauser, "An optimal polynomial approximation of Brownian motion", SIAM J.
    Numer. Anal. 58, 2020; torchsde's `BrownianInterval` uses the same split), with two
    standard normals per node and channel drawn from a counter-based hash of
    `(seed, node, sample row, channel)`. Nothing is stored: a query walks from the root to
    the leaf holding its time, for every sample at once. Inside a leaf, of width
    $(t_1 - t_0) 2^{-\\text{depth}}$, the path is the leaf's conditional mean
    $W_s + r\\Delta W + 6r(1-r)H$ ($r$ the fraction of the leaf), as in diffrax's
    `VirtualBrownianTree` (Li, Wong, Chen & Duvenaud, "Scalable gradients for stochastic
    differential equations", AISTATS 2020, section 5, for the idea). So:

    - $W(t)$ depends on the seed, the sample's row and $t$ only: not on earlier queries, the
      batch, or the order of queries; a rejected step re-queries the same realisation.
    - Values at dyadic times are exactly Brownian; between them the path is smooth at the
      leaf scale, which is far below any step an SDE solver takes (the default depth 30
      resolves $2^{-30} \\approx 10^{-9}$ of the interval).
    - Each query costs `depth` small batched steps, whatever the batch and its times.

    Args:
        t0: start of the interval (a float or a 0-dim tensor).
        t1: end of the interval, `t1 > t0`.
        shape: `(B, M)` (or `(B, *state)` for diagonal noise): the shape of every increment.
        dtype: dtype of the increments (default: torch's default dtype); the tree itself is
            evaluated in float64.
        device: device of the increments (default: CPU).
        seed: a non-negative int; `None` draws one from torch's global generator.
        depth: number of halvings, 1 to 31.

    Raises:
        InvalidInputError: a bad interval, shape, seed or depth.
    """

    levy_area = LevyArea.SPACE_TIME
    query_independent = True

    def __init__(
        self,
        t0: float | Tensor,
        t1: float | Tensor,
        shape: Sequence[int],
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        seed: int | None = None,
        depth: int = 30,
    ):
        self.t0, self.t1, shape = _check_number("t0", t0), _check_number("t1", t1), tuple(shape)
        if not self.t1 > self.t0:
            raise InvalidInputError(f"`t1` must be greater than `t0`; got t0 = {self.t0}, t1 = {self.t1}")
        check_noise_shape(shape)
        self.depth = check_int("depth", depth, 1, 31)
        self.seed = resolve_seed(seed)
        self.dtype = dtype if dtype is not None else torch.get_default_dtype()
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._shape = shape
        self._rows = torch.arange(shape[0], device=self.device)

    @property
    def shape(self) -> tuple[int, ...]:
        """`(B, M)`: the shape of every increment."""
        return self._shape

    def rows(self, index: Tensor | Sequence[int]) -> BrownianTree:
        """The same Brownian motions for some samples: `[B']` indices -> a tree of shape `(B', M)`.

        Only those rows are computed by the view's queries.
        """
        index = torch.as_tensor(index, dtype=torch.long, device=self.device)
        if index.ndim != 1 or len(index) == 0 or int(index.min()) < 0 or int(index.max()) >= self._shape[0]:
            raise InvalidInputError(
                f"`index` must be a non-empty 1-D index into {self._shape[0]} rows; got {index.tolist()}"
            )
        view = object.__new__(BrownianTree)
        view.__dict__.update(self.__dict__)
        view._rows, view._shape = self._rows[index], (len(index), *self._shape[1:])
        return view

    def increment(self, ta: Tensor | float, tb: Tensor | float) -> Tensor:
        """$W(t_b) - W(t_a)$ for `[B]` (or scalar) times in `[t0, t1]`, each sample its own -> `[B, M]`.

        Raises:
            InvalidInputError: a time outside `[t0, t1]` or a batch mismatch.
        """
        w, _ = self._points(("ta", "tb"), ta, tb)
        return (w[1] - w[0]).to(self.dtype)

    def increment_and_area(self, ta: Tensor | float, tb: Tensor | float) -> tuple[Tensor, Tensor]:
        """$\\Delta W = W(t_b) - W(t_a)$ and the space-time Lévy area $H$ of the interval
        between (direction-free; see `BrownianPath.increment_and_area`) -> two `[B, M]`.

        Raises:
            InvalidInputError: a time outside `[t0, t1]` or a batch mismatch.
        """
        (wa, wb), (ka, kb), (ta_, tb_) = self._points(("ta", "tb"), ta, tb, with_times=True)
        length = (tb_ - ta_).abs().reshape(-1, *(1,) * (wa.ndim - 1))
        forward = (tb_ >= ta_).reshape(length.shape)
        w_low, k_low, k_high = torch.where(forward, wa, wb), torch.where(forward, ka, kb), torch.where(forward, kb, ka)
        # U = int_low^high (W_s - W_low) ds = |h| (dW_low->high / 2 + H).
        integral = k_high - k_low - length * w_low
        dw = wb - wa
        low_to_high = torch.where(forward, dw, -dw)
        area = torch.where(length > 0, integral / length.clamp_min(1e-300) - 0.5 * low_to_high, 0.0)
        return dw.to(self.dtype), area.to(self.dtype)

    def evaluate(self, t: Tensor | float) -> Tensor:
        """$W(t) - W(t_0)$ at `[B]` (or scalar) times -> `[B, M]`."""
        return self.increment(self.t0, t)

    def _points(self, names: tuple[str, ...], *times: Any, with_times: bool = False) -> Any:
        """W and its running integral at each of `times` (`[B]` each): stacked `[Q, B, M]` float64."""
        checked = [query_times(n, t, self._shape[0], self.t0, self.t1, self.device) for n, t in zip(names, times)]
        q = len(checked)
        w, k = _walk(torch.cat(checked), self._rows.repeat(q), self.t0, self.t1, self.depth, self.seed, self._shape)
        w, k = w.reshape(q, *self._shape), k.reshape(q, *self._shape)
        return (w, k, checked) if with_times else (w, k)

    def __repr__(self) -> str:
        interval = f"t0={self.t0:.6g}, t1={self.t1:.6g}"
        return (
            f"BrownianTree({interval}, shape={self._shape}, depth={self.depth}, dtype={self.dtype}, seed={self.seed})"
        )


def _walk(
    t: Tensor, rows: Tensor, t0: float, t1: float, depth: int, seed: int, shape: tuple[int, ...]
) -> tuple[Tensor, Tensor]:
    """$W(t) - W(t_0)$ and $\\int_{t_0}^t (W_s - W_{t_0})\\,ds$ for `[P]` times of `[P]` rows -> `[P, C]` each.

    Descends the dyadic tree from the root, halving the node that holds each time; when a
    time lies in the right half, the left half's increment and integral are added to the
    running values at the node's start. When every time is a node's start (a dyadic grid)
    the walk stops at the deepest level any of them needs: below it nothing is added.
    """
    span = t1 - t0
    scaled = ((t - t0) / span).clamp(0.0, 1.0) * 2.0**depth
    leaf = scaled.floor().long().clamp(max=2**depth - 1)
    fraction = (scaled - leaf).unsqueeze(1)  # [P, 1] where t sits in its leaf
    walked = depth if bool(fraction.any()) else depth - _trailing_zeros(leaf, depth)
    levels = torch.arange(walked, device=t.device)
    parents = leaf.unsqueeze(1) >> (depth - levels)  # [P, L] the index of the node split at each level
    goes_right = ((leaf.unsqueeze(1) >> (depth - 1 - levels)) & 1).bool()
    nodes = torch.cat([torch.zeros_like(leaf).unsqueeze(1), (1 << levels) + parents], dim=1)  # 0: the root's draw
    normals = _normals(seed, nodes, rows, math.prod(shape[1:]))  # [P, L + 1, C, 2]
    w = math.sqrt(span) * normals[:, 0, :, 0]
    h = math.sqrt(span / 12) * normals[:, 0, :, 1]
    start_w, start_k, width = torch.zeros_like(w), torch.zeros_like(w), span
    for level in range(walked):
        x1, x2 = normals[:, level + 1, :, 0], normals[:, level + 1, :, 1]
        root = math.sqrt(width)
        left_w = 0.5 * w + 1.5 * h + 0.25 * root * x1
        common, spread = 0.25 * h - 0.125 * root * x1, root / (4 * math.sqrt(3)) * x2
        right = goes_right[:, level : level + 1]
        half = width / 2
        start_k = torch.where(right, start_k + half * (start_w + 0.5 * left_w + common + spread), start_k)
        start_w = torch.where(right, start_w + left_w, start_w)
        w, h = torch.where(right, w - left_w, left_w), torch.where(right, common - spread, common + spread)
        width = half
    r = fraction
    point_w = start_w + r * w + 6 * r * (1 - r) * h
    point_k = start_k + r * width * start_w + width * (0.5 * r**2 * w + 6 * h * (0.5 * r**2 - r**3 / 3))
    return point_w, point_k


def _trailing_zeros(leaf: Tensor, depth: int) -> int:
    """The fewest trailing zero bits among the `[P]` leaf indices (`depth` for index 0)."""
    lowest = torch.where(leaf == 0, 1 << depth, leaf & -leaf)  # the lowest set bit
    return int(lowest.min()).bit_length() - 1


def _normals(seed: int, nodes: Tensor, rows: Tensor, channels: int) -> Tensor:
    """`[P, N, C, 2]` standard normals for `[P, N]` node ids of `[P]` sample rows, by Box-Muller
    from a counter-based hash, so that each depends on `(seed, node, row, channel)` alone."""
    key = int(_mix32(torch.tensor((seed & _M32) ^ 0x9E3779B9)))
    node_key = _mix32(nodes ^ key)  # [P, N]; node ids stay below 2**32 as depth <= 31
    counters = rows.unsqueeze(1) * channels + torch.arange(channels, device=nodes.device)  # [P, C]
    cell = _mix32(node_key.unsqueeze(2) ^ (counters.unsqueeze(1) & _M32))  # [P, N, C]
    u1, u2 = ((_mix32(cell ^ stream).double() + 0.5) / 2.0**32 for stream in _STREAMS)
    radius = (-2 * u1.log()).sqrt()
    angle = 2 * math.pi * u2
    return torch.stack([radius * angle.cos(), radius * angle.sin()], dim=-1)


def _mix32(x: Tensor) -> Tensor:
    """A 32-bit integer hash (Wellons' "lowbias32") on int64 tensors holding values below 2**32;
    every product stays below 2**63."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _mul32(x: Tensor, c: int) -> Tensor:
    """`x * c mod 2**32` for `x` below 2**32, split into 16-bit halves of `c` to avoid overflow."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _M32
