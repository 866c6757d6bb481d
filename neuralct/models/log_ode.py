"""The log-ODE method for neural CDEs on long series: one ODE step per window of observations.

The observation times $t_0 < \\dots < t_{T-1}$ of each sample are split into windows of $W$
gaps, $r_i = t_{iW}$ (and each sample's last time ends its last window). On each window the
CDE $dz = f(z)\\,dX = \\sum_j f_j(z)\\,dX^j$ is replaced by the autonomous ODE

$$\\dot z = \\frac{1}{r_{i+1} - r_i}\\Big(\\sum_j f_j(z)\\,\\Delta X^j
    + \\sum_{j<k} [f_j, f_k](z)\\,A^{jk}\\Big), \\qquad [f_j, f_k] = J_{f_k} f_j - J_{f_j} f_k,$$

driven by the depth-2 log-signature of the path over the window: its increments $\\Delta X$
and Lévy areas $A^{jk} = \\frac12 \\int (X^j - X^j_{r_i})\\,dX^k - (X^k - X^k_{r_i})\\,dX^j$.
Its solution at $r_{i+1}$ matches the CDE's to second order in the window's increments (depth 1
keeps the increments only: first order). The bracket sign follows from Taylor-expanding the CDE,
and a test checks it against the exact solution of a linear CDE.

The method integrates the CDE that the model defines (the same $f$, no new parameters), so it is
a solver, not another model: Morrill et al. learn a field on the log-signature directly; here
the brackets are formed from $f$ by forward-mode Jacobian-vector products, one per control
channel, so a depth-2 evaluation costs $1 + C$ evaluations of $f$.

Reference: Morrill, Salvi, Kidger & Foster, "Neural Rough Differential Equations for Long Time
Series", ICML 2021.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import torch
from torch import Tensor
from torch.func import jvp

from .._checks import check_int, describe
from .._validate import check_field_output
from ..errors import IncompatibleTermError, InvalidInputError
from ..problem import AbstractRunner, Problem
from ..solution import Solution
from ..solve import solve
from ..solvers.base import AbstractSolver
from ..solvers.rk import Tsit5
from ..terms.base import AbstractDriftTerm, AbstractTerm
from ..terms.control import ControlTerm, PerSamplePath

# Three-point Gauss-Legendre rule on [0, 1]: exact for polynomials of degree 5, so for the area
# integrand (X - X_a) X' of every cubic (or linear) piece of a control path.
_NODES = (0.5 - math.sqrt(15) / 10, 0.5, 0.5 + math.sqrt(15) / 10)
_WEIGHTS = (5 / 18, 8 / 18, 5 / 18)


def log_signature(path: PerSamplePath, ends: Tensor, knots: Tensor) -> tuple[Tensor, Tensor]:
    """Depth-2 log-signature of `path` over the windows `[ends[:, i], ends[:, i + 1]]`.

    Exact for a path that is a polynomial of degree at most 3 between consecutive `knots`
    (every interpolation of `neuralct.data.control_path`): the windows are cut at the knots
    and the area of each piece is integrated by the three-point Gauss-Legendre rule.

    Args:
        path: `evaluate(t)` / `derivative(t)` at `[B, K]` times, returning `[B, K, C]`.
        ends: `[B, N + 1]` increasing window ends.
        knots: `[B, J]` times where the path may stop being polynomial.

    Returns:
        `(increments [B, N, C], areas [B, N, C, C])`, `areas` antisymmetric with
        `areas[..., j, k]` $= A^{jk}$.
    """
    edges = torch.cat([ends, knots.to(ends.dtype).clamp(ends[:, :1], ends[:, -1:])], dim=1).sort(dim=1).values
    start, width = edges[:, :-1], edges[:, 1:] - edges[:, :-1]
    # A piece belongs to the window its midpoint lies in (pieces outside the ends have no width).
    window = torch.searchsorted(ends.contiguous(), (start + width / 2).contiguous(), right=True) - 1
    window = window.clamp(0, ends.shape[1] - 2)
    nodes = torch.tensor(_NODES, dtype=ends.dtype, device=ends.device)
    times = (start.unsqueeze(-1) + width.unsqueeze(-1) * nodes).flatten(1)
    values, slopes = path.evaluate(times), path.derivative(times)
    at_ends = path.evaluate(ends)
    pieces, channels = start.shape[1], values.shape[-1]
    origin = at_ends.gather(1, window.unsqueeze(-1).expand(-1, -1, channels))
    offset = values.unflatten(1, (pieces, 3)) - origin.unsqueeze(2)
    weights = torch.tensor(_WEIGHTS, dtype=values.dtype, device=values.device)
    scaled = slopes.unflatten(1, (pieces, 3)) * (width.to(values.dtype).unsqueeze(-1) * weights).unsqueeze(-1)
    moment = torch.einsum("bpqj,bpqk->bpjk", offset, scaled)  # int (X^j - X^j_a) dX^k over each piece
    total = moment.new_zeros(ends.shape[0], ends.shape[1] - 1, channels, channels)
    total = total.scatter_add(1, window[..., None, None].expand_as(moment), moment)
    return at_ends[:, 1:] - at_ends[:, :-1], (total - total.transpose(-1, -2)) / 2


def window_ends(ts: Tensor, lengths: Tensor | None, window: int) -> tuple[Tensor, Tensor]:
    """Every `window`-th save time of each sample and its last one.

    Args:
        ts: `[B, K]` increasing save times.
        lengths: `[B]` save times of each sample (`None`: K each).
        window: save-time gaps per window.

    Returns:
        `(ends [B, N + 1], counts [B])`: sample b's window ends are `ends[b, :counts[b]]`;
        later columns continue past its last time (strictly increasing padding, never solved).
    """
    batch, num = ts.shape
    lengths = torch.full((batch,), num, device=ts.device) if lengths is None else lengths
    last = (lengths - 1).unsqueeze(1)
    columns = torch.arange(0, math.ceil((num - 1) / window) + 1, device=ts.device)
    index = torch.minimum(columns * window, last)
    counts = (last + window - 1).div(window, rounding_mode="floor").squeeze(1) + 1
    ends = ts.gather(1, index)
    span = (ts[:, -1] - ts[:, 0]).unsqueeze(1) + 1
    beyond = (columns - counts.unsqueeze(1) + 1).clamp_min(0).to(ts.dtype)
    return ends + beyond * span, counts


class LogODETerm(AbstractDriftTerm):
    """The windowed ODE of the log-ODE method (see the module docstring).

    Args:
        f: the CDE's field `f(t, z, args)` -> `[B, *state, C]`.
        ends: `[B, N + 1]` window ends.
        increments: `[B, N, C]` $\\Delta X$ over each window.
        areas: `[B, N, C, C]` Lévy areas over each window, or `None` (depth 1).
    """

    def __init__(self, f: Any, ends: Tensor, increments: Tensor, areas: Tensor | None) -> None:
        super().__init__()
        self.f, self.ends = f, ends.contiguous()
        widths = (ends[:, 1:] - ends[:, :-1]).to(increments.dtype)
        self.rates = increments / widths.unsqueeze(-1)
        self.area_rates = None if areas is None else areas / widths[..., None, None]

    def vector_field(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        """`t` `[B]`, `z` `[B, *state]` -> `[B, *state]`, with the window that contains `t`."""
        index = torch.searchsorted(self.ends, t.detach().to(self.ends.dtype).unsqueeze(1), right=True) - 1
        index = index.clamp(0, self.rates.shape[1] - 1).squeeze(1)
        rows = torch.arange(y.shape[0], device=y.device)
        rate = self.rates[rows, index].to(y.dtype)
        matrix = check_field_output(self, self.f(t, y, args), y, y.shape + rate.shape[-1:])
        slope = (matrix * rate.reshape(rate.shape[:1] + (1,) * (y.ndim - 1) + rate.shape[1:])).sum(-1)
        if self.area_rates is None:
            return slope
        return slope + self._brackets(t, y, args, matrix, self.area_rates[rows, index].to(y.dtype))

    def _brackets(self, t: Tensor, y: Tensor, args: Any, matrix: Tensor, area: Tensor) -> Tensor:
        """$\\sum_{j<k} [f_j, f_k](z) A^{jk} = \\sum_k J_{f_k}(z) v_k$ with $v_k = \\sum_j f_j A^{jk}$
        (`area` `[B, C, C]` antisymmetric): one Jacobian-vector product per channel, batched."""
        channels = area.shape[-1]
        directions = torch.einsum("b...j,bjk->b...k", matrix, area).movedim(-1, 0).flatten(0, 1)
        points = y.repeat(channels, *([1] * (y.ndim - 1)))  # channel-major, as `directions`
        times = t.repeat(channels)
        _, tangent = jvp(lambda z: self.f(times, z, args), (points,), (directions,))
        tangent = tangent.unflatten(0, (channels, y.shape[0]))  # [C, B, *state, C]: J_{f_.} v_k
        return torch.diagonal(tangent, dim1=0, dim2=-1).sum(-1)

    def jump_times(self, ts: Tensor) -> Tensor:
        """The window ends: the field changes there."""
        return self.ends[:, 1:]


@dataclass(frozen=True)
class LogODE(AbstractRunner):
    """The log-ODE method (Morrill et al., ICML 2021) for a [`ControlTerm`][neuralct.ControlTerm].

    Windows of `window` save-time gaps (for a neural CDE, observation gaps) are each crossed
    by the windowed ODE of the module docstring, integrated by the inner `solver` under the
    solve's controller with the window ends as save and jump times: `KnotToKnot()` with `RK4()`
    takes one step per window, `PIDController` with `Tsit5()` (the default) adapts within each.
    The states at save times inside a window are interpolated linearly between the window's
    ends: the method approximates the CDE at the window ends only. `solve`'s `gradient` is not
    used: gradients backpropagate through the inner solve. Forward-in-time solves only.
    A model whose term is not a `ControlTerm` runs under it by offering its equation as one:
    [`ANCDE`][neuralct.models.ancde.ANCDE] solves the CDE on $[x; h; z]$ under a solver that
    takes `ControlTerm`s only.

    Args:
        window: save-time gaps per window, >= 1 (1: the CDE itself, to the method's order).
        depth: 1 (increments only) or 2 (with the Lévy areas and Lie brackets).
        solver: the inner ODE solver (a neuralct step solver, not a peer backend).

    Raises:
        InvalidInputError: a bad `window`, `depth` or `solver`.
    """

    window: int = 4
    depth: int = 2
    solver: AbstractSolver = field(default_factory=Tsit5)
    term_types: ClassVar[tuple[type, ...]] = (ControlTerm,)

    def __post_init__(self) -> None:
        check_int("window", self.window)
        check_int("depth", self.depth, 1, 2)
        if not isinstance(self.solver, AbstractSolver):
            raise InvalidInputError(
                f"`solver` must be a neuralct step solver such as nct.RK4(); got {describe(self.solver)}"
            )

    @property
    def order(self) -> float:
        """The depth: the order in the window's increments at which the method matches the CDE."""
        return float(self.depth)

    @property
    def error_order(self) -> int | None:
        """The inner solver's (so an adaptive controller can drive an adaptive inner solver)."""
        return self.solver.error_order

    def check_term(self, term: AbstractTerm) -> None:
        """Raise `IncompatibleTermError` unless `term` is a `ControlTerm` whose path has knots."""
        super().check_term(term)
        if not callable(getattr(term.path, "jump_times", None)):  # pyright: ignore[reportAttributeAccessIssue]
            raise IncompatibleTermError(
                "solver LogODE needs the ControlTerm's path to declare its knots by jump_times(); "
                f"got a {type(term.path).__name__}"  # pyright: ignore[reportAttributeAccessIssue]
            )

    def integrate(self, problem: Problem, y0: Tensor) -> Solution:
        """Solve the windowed ODE over the window ends, then fill in the save times `[B, K]`."""
        if not problem.forward or problem.dense:
            raise InvalidInputError("solver LogODE integrates forward in time without dense output")
        term = cast(ControlTerm, problem.term)  # `solve` ran `check_term` before handing it over
        ends, counts = window_ends(problem.ts, problem.lengths, self.window)
        increments, areas = log_signature(term.path, ends, term.path.jump_times())  # type: ignore[attr-defined]
        windowed = LogODETerm(term.f, ends, increments, areas if self.depth == 2 else None)
        inner = solve(
            windowed, y0, ends, solver=self.solver, controller=problem.controller, dt0=problem.dt0,
            max_steps=problem.max_steps, throw=False, args=problem.args, lengths=counts,
        )  # fmt: skip
        ys = _between_ends(problem.ts, ends, inner.ys)
        return Solution(problem.ts, ys, inner.status, inner.stats, inner.t_final, inner.y_final)


def _between_ends(ts: Tensor, ends: Tensor, ys: Tensor) -> Tensor:
    """`[B, K, *state]` states at `ts` `[B, K]`, linear between those at `ends` (`ys` `[B, N + 1, *state]`)."""
    index = torch.searchsorted(ends.contiguous(), ts.contiguous(), right=True) - 1
    index = index.clamp(0, ends.shape[1] - 2)
    left, right = ends.gather(1, index), ends.gather(1, index + 1)
    weight = ((ts - left) / (right - left)).clamp(0, 1).to(ys.dtype)
    shape = index.shape + (1,) * (ys.ndim - 2)
    take = index.reshape(shape).expand(-1, -1, *ys.shape[2:])
    weight = weight.reshape(shape)
    return torch.lerp(ys.gather(1, take), ys.gather(1, take + 1), weight)


__all__ = ["LogODE", "LogODETerm", "log_signature", "window_ends"]
