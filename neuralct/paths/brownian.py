"""Brownian motion queried over per-sample time intervals, on top of torchsde's `BrownianInterval`."""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchsde
from torch import Tensor

from .._checks import check_int, check_number, describe
from ..errors import InvalidInputError


class LevyArea(enum.Enum):
    """Which Lévy-area approximation the underlying `BrownianInterval` also computes (needed
    only by some peer-library solvers, e.g. torchsde's `srk` and `log_ode`).

    Attributes:
        NONE: increments only.
        SPACE_TIME: exact space-time Lévy area.
        DAVIE: Davie's approximation of the Lévy area.
        FOSTER: Foster's correction of Davie's approximation.
    """

    NONE = "none"
    SPACE_TIME = "space-time"
    DAVIE = "davie"
    FOSTER = "foster"


class BrownianPath:
    """A batch of Brownian motions on $[t_0, t_1]$, queried at per-sample times.

    Wraps `torchsde.BrownianInterval` (Kidger et al., "Efficient and Accurate Gradients for
    Neural SDEs", NeurIPS 2021, section 4), which samples increments by Brownian bridges in a
    binary tree of intervals seeded by splittable PRNGs: memory stays small and any interval
    can be asked for again with identical results (values that fall out of its LRU cache are
    regenerated from their seeds).

    The tree is split at the queried times, so the sample path is a function of the seed
    *and* of the query sequence: the same seed with the same sequence of queries gives the
    same values, and re-querying an interval always repeats its values, but a path whose
    first queries differ is another (equally Brownian) realisation, and with per-sample
    times one sample's queries shape its batch mates' paths. Adaptive SDE solves need
    values that depend on the seed alone: use [`BrownianTree`][neuralct.BrownianTree].

    Args:
        t0: start of the interval (a float or a 0-dim tensor).
        t1: end of the interval, `t1 > t0`.
        shape: `(B, M)`: B samples of an M-dimensional Brownian motion (`(B, *state)` for
            diagonal noise).
        dtype: dtype of the increments (default: torch's default dtype).
        device: device of the increments (default: CPU).
        seed: a non-negative int; `None` draws one from torch's global generator, so
            `torch.manual_seed` makes the path reproducible too.
        levy_area: a [`LevyArea`][neuralct.paths.brownian.LevyArea], `None` for `NONE`.
            `SPACE_TIME` (or `DAVIE`, `FOSTER`) also gives `increment_and_area`, which
            `nct.SRA1` needs.

    Raises:
        InvalidInputError: a bad interval, shape or seed.
        TypeError: `levy_area` not a `LevyArea`.
    """

    def __init__(
        self,
        t0: float | Tensor,
        t1: float | Tensor,
        shape: Sequence[int],
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        seed: int | None = None,
        levy_area: LevyArea | None = None,
    ):
        t0, t1, shape = _check_number("t0", t0), _check_number("t1", t1), tuple(shape)
        if not t1 > t0:
            raise InvalidInputError(f"`t1` must be greater than `t0`; got t0 = {t0}, t1 = {t1}")
        check_noise_shape(shape)
        seed = resolve_seed(seed)
        levy_area = LevyArea.NONE if levy_area is None else levy_area
        if not isinstance(levy_area, LevyArea):
            raise TypeError(f"`levy_area` must be None or a LevyArea (e.g. LevyArea.SPACE_TIME); got {levy_area!r}")
        self.interval = torchsde.BrownianInterval(
            t0=t0,
            t1=t1,
            size=shape,
            dtype=dtype if dtype is not None else torch.get_default_dtype(),
            device=torch.device(device) if device is not None else torch.device("cpu"),
            entropy=seed,
            levy_area_approximation=levy_area.value,
        )
        self.seed, self.levy_area = seed, levy_area
        self._t0, self._t1 = t0, t1
        self._rows: Tensor | None = None
        self._shape = shape

    @property
    def t0(self) -> float:
        """Start of the interval."""
        return self._t0

    @property
    def t1(self) -> float:
        """End of the interval."""
        return self._t1

    @property
    def shape(self) -> tuple[int, ...]:
        """`(B, M)`: the shape of every increment."""
        return self._shape

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the increments."""
        return self.interval.dtype

    @property
    def query_independent(self) -> bool:
        """`False`: the values depend on the query sequence (see the class docstring)."""
        return False

    @property
    def device(self) -> torch.device:
        """Device of the increments."""
        return torch.device(self.interval.device)

    def rows(self, index: Tensor | Sequence[int]) -> BrownianPath:
        """A view on some samples of this path: the same Brownian motion for those rows.

        Use it to solve a sub-batch with exactly the noise it has inside the full batch.
        Every query of the view still samples the whole parent batch.

        Args:
            index: `[B']` sample indices into this path's batch.

        Returns:
            A `BrownianPath` of shape `(B', M)` sharing this path's tree.
        """
        index = torch.as_tensor(index, dtype=torch.long)
        if index.ndim != 1 or len(index) == 0 or int(index.min()) < 0 or int(index.max()) >= self._shape[0]:
            raise InvalidInputError(
                f"`index` must be a non-empty 1-D index into {self._shape[0]} rows; got {index.tolist()}"
            )
        view = object.__new__(BrownianPath)
        view.interval, view.seed, view.levy_area = self.interval, self.seed, self.levy_area
        view._t0, view._t1 = self._t0, self._t1
        view._rows = index if self._rows is None else self._rows[index]
        view._shape = (len(index), *self._shape[1:])
        return view

    def increment(self, ta: Tensor | float, tb: Tensor | float) -> Tensor:
        """$W(t_b) - W(t_a)$ for every sample, each over its own interval.

        When every sample shares `ta` and `tb` (the usual case) this is one query of the
        tree. Otherwise the samples are grouped by their `(ta, tb)` pair and each distinct
        pair costs one query, which samples the *whole* batch: per-sample grids cost
        O(distinct pairs x B x M) per step. Samples with `ta == tb` get zeros for free.
        `ta > tb` gives $-(W(t_a) - W(t_b))$.

        Args:
            ta: `[B]` (or scalar) start times inside `[t0, t1]`.
            tb: `[B]` (or scalar) end times inside `[t0, t1]`.

        Returns:
            `[B, M]` increments in this path's dtype and device.

        Raises:
            InvalidInputError: a time outside `[t0, t1]` or a batch mismatch.
        """
        return self._per_pair(ta, tb, lambda a, b: (self._query(a, b),))[0]

    def increment_and_area(self, ta: Tensor | float, tb: Tensor | float) -> tuple[Tensor, Tensor]:
        """$\\Delta W = W(t_b) - W(t_a)$ and the space-time Lévy area $H$ of the interval between.

        $H = \\frac{1}{|h|}\\int (W_s - W_{\\min} - \\tfrac{s - t_{\\min}}{|h|}\\,\\Delta W_{\\min\\to\\max})\\,ds$
        over the interval, $h = t_b - t_a$ (Foster, Lyons & Oberhauser, "An optimal
        polynomial approximation of Brownian motion", SIAM J. Numer. Anal. 58, 2020). It does
        not change sign with the direction, while $\\Delta W$ does, so that for either direction
        $\\frac{1}{h}\\int_{t_a}^{t_b} (W_s - W_{t_a})\\,ds = \\tfrac12 \\Delta W + H$. Same grouping
        and cost as `increment`.

        Args:
            ta: `[B]` (or scalar) start times inside `[t0, t1]`.
            tb: `[B]` (or scalar) end times inside `[t0, t1]`.

        Returns:
            `(dW, H)`, each `[B, M]`.

        Raises:
            InvalidInputError: the path was built without a Lévy area, a time outside
                `[t0, t1]`, or a batch mismatch.
        """
        if self.levy_area == LevyArea.NONE:
            raise InvalidInputError(
                "`levy_area` of this BrownianPath is NONE, so it has no space-time Levy area; "
                "build it with levy_area=nct.LevyArea.SPACE_TIME"
            )
        dw, area = self._per_pair(ta, tb, self._query_area)
        return dw, area

    def _per_pair(
        self, ta: Tensor | float, tb: Tensor | float, query: Callable[[float, float], tuple[Tensor, ...]]
    ) -> tuple[Tensor, ...]:
        """`query(a, b)` of the whole batch once per distinct `(ta, tb)` pair, each sample's rows kept."""
        ta, tb = self._times("ta", ta), self._times("tb", tb)
        if bool(((ta == ta[0]) & (tb == tb[0])).all()):
            return tuple(self._select(value) for value in query(float(ta[0]), float(tb[0])))
        outs: list[Tensor] = []
        groups: dict[tuple[float, float], list[int]] = defaultdict(list)
        for row, pair in enumerate(zip(ta.tolist(), tb.tolist())):
            groups[pair].append(row)
        for (a, b), members in sorted(groups.items()):
            if a != b:
                index = torch.tensor(members, device=self.device)
                values = query(a, b)
                outs = outs or [torch.zeros(self._shape, dtype=self.dtype, device=self.device) for _ in values]
                for out, value in zip(outs, values):
                    out[index] = self._select(value)[index]
        return tuple(outs) if outs else tuple(self._select(value) for value in query(self.t0, self.t0))

    def evaluate(self, t: Tensor | float) -> Tensor:
        """$W(t) - W(t_0)$ at `[B]` (or scalar) times -> `[B, M]` (see `increment` for the cost)."""
        return self.increment(self.t0, t)

    def _query(self, a: float, b: float) -> Tensor:
        """The whole parent batch's increment from `a` to `b` (either order)."""
        if a == b:
            return torch.zeros(self.interval.shape, dtype=self.dtype, device=self.device)
        if a < b:
            return self.interval(a, b)
        return -self.interval(b, a)

    def _query_area(self, a: float, b: float) -> tuple[Tensor, Tensor]:
        """The whole parent batch's increment from `a` to `b` and the interval's space-time Lévy area."""
        if a == b:
            zeros = torch.zeros(self.interval.shape, dtype=self.dtype, device=self.device)
            return zeros, zeros
        low, high = min(a, b), max(a, b)
        dw, integral = self.interval(low, high, return_U=True)
        # torchsde returns U = int (W_s - W_low) ds = |h| (dW / 2 + H).
        area = integral / (high - low) - 0.5 * dw
        return (dw if a < b else -dw), area

    def _select(self, value: Tensor) -> Tensor:
        return value if self._rows is None else value[self._rows.to(value.device)]

    def _times(self, name: str, t: Any) -> Tensor:
        """Broadcast `t` to `[B]` float64 on the CPU, checked (with rounding slack) against `[t0, t1]`."""
        return query_times(name, t, self._shape[0], self.t0, self.t1, "cpu")

    def __repr__(self) -> str:
        interval = f"t0={self.t0:.6g}, t1={self.t1:.6g}"
        return f"BrownianPath({interval}, shape={self._shape}, dtype={self.dtype}, seed={self.seed})"


def query_times(name: str, t: Any, batch: int, t0: float, t1: float, device: torch.device | str) -> Tensor:
    """`t` (scalar or `[B]`) broadcast to `[B]` float64 on `device`, checked with rounding slack
    against `[t0, t1]` and clamped into it.

    Raises:
        InvalidInputError: a batch mismatch or a time outside the interval, naming `name`.
    """
    # A Python float is read in float64 (torch.as_tensor alone would round it to float32).
    if isinstance(t, Tensor):
        t = t.detach().to(device, torch.float64)
    else:
        t = torch.tensor(t, dtype=torch.float64, device=device)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise InvalidInputError(f"`{name}` must be a scalar or [B] with B = {batch}; got shape {tuple(t.shape)}")
    slack = 8 * torch.finfo(torch.float32).eps * max(1.0, abs(t0), abs(t1))
    outside = ~((t >= t0 - slack) & (t <= t1 + slack))
    if bool(outside.any()):
        b = int(outside.nonzero()[0])
        raise InvalidInputError(
            f"`{name}` must lie in the Brownian path's interval [{t0:.6g}, {t1:.6g}]; sample {b} asks "
            f"{name}[{b}] = {float(t[b]):.6g}; build the Brownian motion over the whole solve interval"
        )
    return t.clamp(t0, t1)


def check_noise_shape(shape: tuple[Any, ...]) -> None:
    """Raise `InvalidInputError` unless `shape` is `(B, M)` (or `(B, *state)`) of positive ints."""
    if len(shape) < 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
        raise InvalidInputError(f"`shape` must be (B, M) (or (B, *state)) of positive ints; got {describe(shape)}")


def resolve_seed(seed: Any) -> int:
    """`seed` checked (None or a non-negative int), or a fresh random seed when it is None."""
    if check_int("seed", seed, 0, optional=True) is None:
        return int(torch.randint(0, 2**31 - 1, ()).item())
    return seed


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise InvalidInputError(
                f"`{name}` must be a number or a one-element tensor; got shape {tuple(value.shape)}"
            )
        value = float(value)
    return check_number(name, value)
