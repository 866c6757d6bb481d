"""The delay differential equation term $dy/dt = f(t, y(t), y(t - \\tau_1), \\dots, y(t - \\tau_n))$."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_int, describe
from .._validate import check_field_output
from ..errors import InvalidInputError
from .base import AbstractTerm, merge_jump_times, path_jump_times

History = Callable[[Tensor], Tensor]


class DelayTerm(AbstractTerm):
    """Delay differential equation with constant delays.

    $$\\frac{dy}{dt} = f\\big(t, y(t), [y(t - \\tau_1), \\dots, y(t - \\tau_n)], \\text{args}\\big),
    \\qquad y(t) = \\phi(t) \\text{ for } t < t_0.$$

    Integrate it with [`MethodOfSteps`][neuralct.MethodOfSteps] (Bellen & Zennaro,
    *Numerical Methods for Delay Differential Equations*, Oxford 2003, chapter 3). A delay
    equation is not an ODE in $y(t)$ alone, so ODE solvers refuse this term.

    The solution is continuous but its derivatives jump at the breakpoints
    $t_0 + \\sum_i k_i \\tau_i$ (a jump of $y'$ at $t_0$, when $\\phi'(t_0^-) \\ne y'(t_0^+)$,
    reappears in $y''$ at $t_0 + \\tau_i$, and so on), and likewise at $s + \\sum_i k_i \\tau_i$
    for every knot $s$ of the input, where $f$ itself jumps; `jump_times` lists them so that
    steps land on them and keep the solver's order.

    Time direction: "before" follows the direction of each sample's time grid. For a
    backward solve (decreasing `t`) the delayed value is $y(t + \\tau_i)$ and the history
    covers $t > t_0$; the equation is then the time reversal of a forward delay equation.

    Args:
        f: callable `f(t, y, y_delayed, args)` with `t` `[B]`, `y` `[B, *state]` and
            `y_delayed` `[B, n_delays, *state]` holding $y(t - \\tau_i)$; returns `[B, *state]`.
            An `nn.Module` is registered as a submodule.
        delays: the positive delays $\\tau_i$, a sequence of floats or a 1-D tensor `[n_delays]`.
            An `nn.Parameter` makes them learnable: gradients reach them through the
            history lookups and the breakpoint grid. So does a sequence holding scalar tensors
            that require grad (stacked at every use; its `nn.Parameter`s are registered).
        history: $\\phi$, either a callable `history(t)` with `t` `[B]` returning `[B, *state]`
            (called at times before each sample's start), or a constant tensor `[B, *state]`.
            A tensor is registered as a parameter (if it is one) or buffer.
        breakpoint_depth: breakpoints that combine several delays, $t_0 + \\sum_i k_i\\tau_i$
            with $\\sum_i k_i \\le$ `breakpoint_depth`, are listed, and so are the knots of
            `inputs` shifted by such sums. A step across a jump of $y^{(m)}$ limits the
            method to order $m$; what is not listed jumps in $y^{(7)}$ or higher, so the
            default 5 keeps the order of every method up to order 7. Every
            multiple $t_0 + k\\tau_i$ is always listed, which also keeps every step no longer
            than the smallest delay.
        inputs: the input path `f` reads, if any (e.g. `PiecewiseConstantPath`); its
            `jump_times()` and their shifts by the delays are merged with the breakpoints,
            so steps land on every knot and on every time a knot's jump reaches through a delay.

    Raises:
        InvalidInputError: `delays` empty, not 1-D, not finite or not positive; `history`
            neither callable nor a tensor; `breakpoint_depth` not a positive int; a tensor in
            a `delays` sequence that is not a scalar.

    Example:
        >>> import torch, neuralct as nct
        >>> history = lambda t: torch.ones(len(t), 1)
        >>> term = nct.DelayTerm(lambda t, y, yd, args: -yd[:, 0], delays=[1.0], history=history)
        >>> sol = nct.solve(term, torch.ones(1, 1), torch.linspace(0, 3, 4), solver=nct.MethodOfSteps())
    """

    def __init__(
        self,
        f: Callable[[Tensor, Tensor, Tensor, Any], Tensor],
        delays: Sequence[float] | Tensor,
        history: History | Tensor,
        *,
        breakpoint_depth: int = 5,
        inputs: object = None,
    ):
        super().__init__()
        if not callable(f):
            raise InvalidInputError(f"`f` must be callable as f(t, y, y_delayed, args); got {describe(f)}")
        check_int("breakpoint_depth", breakpoint_depth)
        self.f = f
        self.breakpoint_depth = breakpoint_depth
        self.inputs = inputs
        self._fixed_delays: tuple[float, ...] | None = None
        self._delay_parts: tuple[Tensor | float, ...] | None = None
        if isinstance(delays, Tensor):
            _check_delays(delays.detach())
            if isinstance(delays, nn.Parameter):
                self.delays = delays
            else:
                self.register_buffer("delays", delays)
        elif _holds_learnable_tensor(delays):
            # Kept as given and stacked at every use: a stack made once would hold a graph
            # that the first backward pass frees.
            self._delay_parts = _learnable_parts(delays)
            _check_delays(self.delay_values(torch.empty(0, dtype=torch.float64)).detach())
            for i, part in enumerate(self._delay_parts):
                if isinstance(part, nn.Parameter):
                    self.register_parameter(f"delay_{i}", part)
        else:
            values = _delays_from_sequence(delays)
            _check_delays(torch.tensor(values, dtype=torch.float64))
            self._fixed_delays = values
        self._history_fn: History | None = None
        if isinstance(history, Tensor):
            if isinstance(history, nn.Parameter):
                self.history = history
            else:
                self.register_buffer("history", history)
        elif callable(history):
            self._history_fn = history
            if isinstance(history, nn.Module):
                self.history_module = history
        else:
            raise InvalidInputError(
                f"`history` must be a callable history(t [B]) -> [B, *state] or a tensor [B, *state]; "
                f"got {describe(history)}"
            )

    @property
    def n_delays(self) -> int:
        """Number of delays."""
        for given in (self._fixed_delays, self._delay_parts):
            if given is not None:
                return len(given)
        return int(self.delays.shape[0])

    def delay_values(self, like: Tensor) -> Tensor:
        """`[n_delays]` delays in `like`'s dtype and device (differentiable when learnable)."""
        if self._fixed_delays is not None:
            return torch.tensor(self._fixed_delays, dtype=like.dtype, device=like.device)
        if self._delay_parts is not None:
            parts = (torch.as_tensor(d).to(dtype=like.dtype, device=like.device).reshape(()) for d in self._delay_parts)
            return torch.stack(list(parts))
        return self.delays.to(dtype=like.dtype, device=like.device)

    def vector_field(self, t: Tensor, y: Tensor, y_delayed: Tensor, args: Any) -> Tensor:
        """$f(t, y, y_\\text{delayed}, \\text{args})$: `t` `[B]`, `y` `[B, *state]`,
        `y_delayed` `[B, n_delays, *state]` -> `[B, *state]`.

        Raises:
            IncompatibleTermError: `f` returned other than a tensor of `y`'s shape, dtype and
                device (checked here, where it is cheap, rather than found deep in the step).
        """
        return check_field_output(self, self.f(t, y, y_delayed, args), y)

    def history_at(self, t: Tensor, like: Tensor) -> Tensor:
        """$\\phi(t)$ for `t` `[B]` -> `[B, *state]`, checked against `like` (the state).

        Raises:
            InvalidInputError: the history's shape or dtype is not the state's.
        """
        if self._history_fn is None:
            value, origin = self.history, "the history tensor has"
        else:
            value, origin = self._history_fn(t), "history(t) returned"
        if not isinstance(value, Tensor) or value.shape != like.shape:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise InvalidInputError(
                f"`history` must give values of shape [B, *state] = {tuple(like.shape)} like `y0`; "
                f"{origin} shape {shape}"
            )
        if value.dtype != like.dtype:
            raise InvalidInputError(
                f"`history` must give values of dtype {like.dtype} like `y0`; {origin} dtype {value.dtype}"
            )
        return value

    def jump_times(self, ts: Tensor, order: float | None = None) -> Tensor | None:
        """`[B, J]` the breakpoints (see `breakpoints`) merged with the knots of `inputs`.

        Args:
            ts: `[B, K]` the solve's save times.
            order: the order $p$ of the method that integrates the term, if known. A knot
                shifted by $m$ delays is a jump of $y^{(m + 1)}$, which costs a method of
                order $p$ accuracy only when $m + 1 < p$; shifts by more than $p - 1$ delays
                are then left out (Euler lands on the knots alone).
        """
        knots = path_jump_times(self.inputs)
        knot_depth = self.breakpoint_depth if order is None else min(self.breakpoint_depth, math.ceil(order) - 1)
        return merge_jump_times(ts, self.breakpoints(ts, knots, knot_depth), knots)

    def breakpoints(self, ts: Tensor, knots: Tensor | None = None, knot_depth: int | None = None) -> Tensor:
        """`[B, J]` breakpoints of each sample, sorted along the solve: $t_0 + d \\sum_i k_i \\tau_i$
        (direction $d$), and $s + d \\sum_i k_i \\tau_i$ with $1 \\le \\sum_i k_i \\le$
        `knot_depth` (default `breakpoint_depth`) for each of the `knots` $s$ (`[J]` or `[B, J]`)
        strictly inside the span, whose jumps in $f$ the delays carry forward; see the class
        docstring.

        Each row holds only its own breakpoints strictly inside its span, less those that
        coincide with the previous one to rounding (the loop cannot step between them);
        rows with fewer are padded with $d \\cdot \\infty$, which the loop never reaches.
        """
        taus = self.delay_values(ts)
        _check_delays(taus.detach())
        t0 = ts[:, :1]
        direction = torch.where(ts[:, -1:] < t0, -1.0, 1.0).to(ts.dtype)
        span = (ts[:, -1:] - t0).abs()
        values, limit, depth = taus.detach().double().tolist(), float(span.max()), self.breakpoint_depth
        jumps = [_shift(t0, direction, taus, _breakpoint_combinations(values, limit, depth, every_multiple=True))]
        knot_depth = depth if knot_depth is None else knot_depth
        if knots is not None and knot_depth > 0:
            knots = knots.to(device=ts.device, dtype=ts.dtype).expand(ts.shape[0], -1)
            offset = direction * (knots - t0)
            # A knot at or before t0 changes nothing the solve sees: the history is given there.
            origins = torch.where((offset > 0) & (offset < span), knots, direction * torch.inf)
            combos = _breakpoint_combinations(values, limit, knot_depth, every_multiple=False)
            jumps.append(_shift(origins, direction, taus, combos))
        return _inside_and_apart(torch.cat(jumps, dim=1), ts, direction, span)

    def extra_repr(self) -> str:
        if self._fixed_delays is not None:
            return f"delays={self._fixed_delays}"
        learnable = self._delay_parts is not None or self.delays.requires_grad
        return f"delays={'learnable' if learnable else 'tensor'}"


def _delays_from_sequence(delays: Any) -> tuple[float, ...]:
    try:
        values = tuple(float(d) for d in delays)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"`delays` must be a sequence of positive floats or a 1-D tensor; got {describe(delays)}"
        ) from None
    return values


def _holds_learnable_tensor(delays: Any) -> bool:
    """Whether `delays` is a sequence with a tensor that requires grad (which `float` would detach)."""
    return isinstance(delays, Sequence) and any(isinstance(d, Tensor) and d.requires_grad for d in delays)


def _learnable_parts(delays: Sequence[Any]) -> tuple[Tensor | float, ...]:
    """The one-element tensors of `delays` as given, its other entries as floats."""
    parts: list[Tensor | float] = []
    for i, d in enumerate(delays):
        if not isinstance(d, Tensor):
            parts.append(_delays_from_sequence([d])[0])
        elif d.numel() != 1:
            raise InvalidInputError(
                f"`delays` given as a sequence must hold scalars; got delays[{i}] of shape {tuple(d.shape)}"
            )
        else:
            parts.append(d)
    return tuple(parts)


def _check_delays(delays: Tensor) -> None:
    """`delays` must be a non-empty 1-D tensor of positive finite numbers."""
    if delays.ndim != 1 or delays.shape[0] == 0:
        raise InvalidInputError(
            f"`delays` must be a non-empty 1-D sequence of positive floats; got shape {tuple(delays.shape)}"
        )
    bad = ~(torch.isfinite(delays) & (delays > 0))
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise InvalidInputError(
            f"`delays` must be positive and finite (a zero or negative delay is not a delay equation); "
            f"got delays[{i}] = {float(delays[i])}"
        )


def _shift(origins: Tensor, direction: Tensor, taus: Tensor, combos: list[list[int]]) -> Tensor:
    """`[B, S * M]` each of `origins` `[B, S]` plus `direction` `[B, 1]` times each of the `M`
    sums $\\sum_i k_i \\tau_i$ given by `combos` (differentiable in `taus` `[n]`)."""
    multiples = torch.tensor(combos, dtype=origins.dtype, device=origins.device).reshape(len(combos), len(taus))
    return (origins[:, :, None] + direction[:, :, None] * (multiples @ taus)).flatten(1)


def _inside_and_apart(jumps: Tensor, ts: Tensor, direction: Tensor, span: Tensor) -> Tensor:
    """`jumps` `[B, J]` sorted along each sample's solve, those outside its open span or
    within rounding of the previous one left out, rows padded with `direction` times infinity."""
    key, order = torch.sort((direction * (jumps - ts[:, :1])).detach(), dim=1, stable=True)
    jumps = jumps.gather(1, order)
    tolerance = 64 * torch.finfo(ts.dtype).eps * ts.detach().abs().amax(dim=1, keepdim=True).clamp_min(1.0)
    crowded = torch.zeros_like(key, dtype=torch.bool)
    crowded[:, 1:] = key.diff(dim=1) <= tolerance
    dropped = crowded | (key >= span - tolerance)
    kept = int((~dropped).sum(dim=1).max()) if key.numel() else 0
    order = torch.argsort(torch.where(dropped, torch.inf, key), dim=1, stable=True)[:, :kept]
    return torch.where(dropped, direction * torch.inf, jumps).gather(1, order)


def _breakpoint_combinations(taus: list[float], span: float, depth: int, every_multiple: bool) -> list[list[int]]:
    """Integer vectors $k \\ge 0$, $k \\ne 0$, with $k \\cdot \\tau < $ `span` and $\\sum k \\le$
    `depth` (and, if `every_multiple`, every pure multiple); sorted by value, one per value."""
    n = len(taus)
    found: dict[tuple[int, ...], float] = {}
    if every_multiple:
        for i, tau in enumerate(taus):
            for k in range(1, math.ceil(span / tau)):
                found[tuple(k if j == i else 0 for j in range(n))] = k * tau
    level = [tuple(0 for _ in range(n))]
    for _ in range(depth):
        grown = (tuple(b + (j == i) for j, b in enumerate(base)) for base in level for i in range(n))
        level = [key for key in dict.fromkeys(grown) if sum(k * tau for k, tau in zip(key, taus)) < span]
        found.update((key, sum(k * tau for k, tau in zip(key, taus))) for key in level)
    kept: list[list[int]] = []
    last = 0.0
    for key, value in sorted(found.items(), key=lambda item: item[1]):
        if value > last:
            kept.append(list(key))
            last = value
    return kept


__all__ = ["DelayTerm"]
