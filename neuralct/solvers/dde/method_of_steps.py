"""The method of steps: any explicit Runge-Kutta method for delay equations, with dense history."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..._checks import check_int, describe
from ...errors import IncompatibleTermError
from ...paths.dense import as_coefficients
from ...terms.base import stage_times
from ...terms.delay import DelayTerm
from ..base import AbstractSolver, Carry, StepResult
from ..rk.explicit import AbstractExplicitRK
from ..rk.tsit5 import Tsit5
from ._history import History, Record


@dataclass(frozen=True)
class _State:
    """The carry of `MethodOfSteps` (one object, so `carry[0]` is never a state-shaped tensor).

    Attributes:
        history: accepted steps so far, `None` before the first step.
        slope: `[B, *state]` $f$ at each sample's current point, valid where not `stale`.
        stale: `[B]` samples whose slope must be evaluated afresh (at the start and after a
            breakpoint, where the right-hand limit differs from the last stage of the step).
        step: set only in a step's result: what `merge_carry` needs to commit that step.
    """

    history: History | None = None
    slope: Tensor | None = None
    stale: Tensor | None = None
    step: _StepOutput | None = None


@dataclass(frozen=True)
class _StepOutput:
    """A step's proposal: its `record` for `history`, the slopes at its end and start
    `[B, *state]`, and `moved` `[B]` (a non-zero step; zero-length steps change nothing)."""

    history: History
    record: Record
    end_slope: Tensor
    start_slope: Tensor
    moved: Tensor


class _DelayedStages:
    """The delay term on one step as a stage field (see `AbstractExplicitRK.step_stages`),
    the delayed values of every stage looked up in one batch when the step starts.

    No step is longer than the smallest delay, so every delayed stage time
    $t_0 + c_i h - \\tau_j$ lies in the past. It is read from $\\phi$ when the step, shifted
    back by $\\tau_j$, lies before the start (decided at the step's midpoint, so a stage on a
    breakpoint takes the one-sided limit from inside the step), and from the accepted steps
    otherwise.

    Args:
        term: the delay term.
        history: the accepted steps so far.
        t0, h: `[B]` the step's start and signed size.
        like: `[B, *state]` the state (shape and dtype of the history's values).
        times: the step's stage times, each `[B]` (`stage_times` at the inner solver's nodes).
        first: the first stage evaluated (0 when the slope at the start is needed, else 1).
        args: passed on to the term.
    """

    def __init__(
        self,
        term: DelayTerm,
        history: History,
        t0: Tensor,
        h: Tensor,
        like: Tensor,
        times: list[Tensor],
        first: int,
        args: Any,
    ):
        self.term, self.args, self.first, self.times = term, args, first, times
        self.values = _delayed_values(term, history, t0, h, like, times[first:])

    def __call__(self, stage: int, y: Tensor) -> Tensor:
        """$f(t, y, y(t - \\tau), \\text{args})$ at stage `stage` (time `times[stage]`)."""
        return self.term.vector_field(self.times[stage], y, self.values[:, stage - self.first], self.args)


# Under `compile=True` the lookups run eagerly between the compiled pieces of the step: their
# sizes (the chunks a step reads) grow with the solve, and they decide on values.
@torch.compiler.disable
def _delayed_values(
    term: DelayTerm, history: History, t0: Tensor, h: Tensor, like: Tensor, times: list[Tensor]
) -> Tensor:
    """`[B, S, n_delays, *state]` the delayed values $y(t_s - \\tau_j)$ at the S stage `times`
    (each `[B]`) of the steps from `t0` by `h` `[B]`, from the history function before the start
    and from `history`'s accepted steps after it (see `_DelayedStages`)."""
    taus = term.delay_values(t0)
    mid = history.direction * (t0 - history.start) + h.abs() / 2
    before_start = mid[:, None] < taus[None, :]
    window = history.window(history.direction * t0, taus, ~before_start & (h != 0)[:, None])
    shifts = history.direction[:, None] * taus[None, :]
    delayed = torch.stack(times, dim=1)[:, :, None] - shifts[:, None, :]
    values = None if window is None else window.evaluate(delayed.flatten(1)).unflatten(1, delayed.shape[1:])
    if values is None or bool(before_start.any()):
        # Pairs read from the solution ask phi at a harmless time, so that no value outside
        # phi's domain (nor its gradient) can leak through the `where` below.
        safe = torch.where(before_start[:, None, :], delayed, (history.start[:, None] - shifts)[:, None, :])
        columns = safe.flatten(1).unbind(1)
        before = torch.stack([term.history_at(t, like) for t in columns], dim=1).unflatten(1, delayed.shape[1:])
        mask = before_start.reshape(before_start.shape[0], 1, -1, *(1,) * (like.ndim - 1))
        values = before if values is None else torch.where(mask, before, values)
    return values


@dataclass(frozen=True)
class MethodOfSteps(AbstractSolver):
    """Solve a [`DelayTerm`][neuralct.DelayTerm] with an explicit Runge-Kutta method and
    its dense output as the history (Bellen & Zennaro, *Numerical Methods for Delay
    Differential Equations*, Oxford 2003, sections 3.2 and 4.1).

    Each stage reads the delayed values $y(t + c_i h - \\tau_j)$ from the history function
    before the start and from the dense polynomials of the accepted steps after it. The
    term's breakpoints ($t_0 + k\\tau_j$, and the input's knots shifted by the delays) are
    landed on exactly, so no step is longer than the smallest delay (every delayed stage
    time is already known: no iteration is needed) and no step crosses a derivative jump.
    A method of order $p$ with a dense output of order $q$ then has order $\\min(p, q + 1)$
    (the history's $O(h^{q+1})$ error enters each step multiplied by $h$): Tsit5 and Dopri5
    keep 5 with their fourth-order dense output, RK4 keeps 4 with its cubic Hermite
    interpolant, and Dopri8, whose dense output is that cubic Hermite too, has order 4.

    The history is stored per sample in immutable chunks of `chunk_size` steps; a step reads
    only the chunks its delayed times fall in, so time and memory grow linearly with the
    number of steps and gradients flow through every lookup (to `y0`, the history's and
    the vector field's parameters, and learnable delays).

    Args:
        solver: the explicit Runge-Kutta method used on each step; its order, error estimate
            (hence adaptivity) and dense output are this solver's.
        chunk_size: accepted steps per stored history chunk.

    Raises:
        IncompatibleTermError: `solver` is not an explicit Runge-Kutta method.
        InvalidInputError: `chunk_size` is not a positive int.
    """

    solver: AbstractExplicitRK = Tsit5()
    chunk_size: int = 16
    term_types: ClassVar[tuple[type, ...]] = (DelayTerm,)

    def __post_init__(self) -> None:
        if not isinstance(self.solver, AbstractExplicitRK):
            raise IncompatibleTermError(
                f"`solver` must be an explicit Runge-Kutta method (an AbstractExplicitRK such as nct.Tsit5()); "
                f"got {describe(self.solver)}"
            )
        check_int("chunk_size", self.chunk_size)

    @property
    def order(self) -> float:  # pyright: ignore[reportIncompatibleVariableOverride]
        """The inner solver's order, capped at its dense output's order plus one (the history's
        accuracy; see the class docstring)."""
        return min(self.solver.order, self.solver.dense_order + 1)

    @property
    def error_order(self) -> int | None:  # pyright: ignore[reportIncompatibleVariableOverride]
        """The inner solver's error order (`None`: fixed steps only)."""
        return self.solver.error_order

    @property
    def has_dense_output(self) -> bool:
        """Always `True`: the history is the dense output."""
        return True

    @property
    def interpolates_saves(self) -> bool:
        """As the inner solver."""
        return self.solver.interpolates_saves

    def jump_times(self, term: DelayTerm, ts: Tensor) -> Tensor | None:
        """The term's breakpoints, with the input's knots shifted only as far as this
        method's order notices (see `DelayTerm.jump_times`)."""
        return term.jump_times(ts, order=self.order)

    def init(self, term: DelayTerm, t0: Tensor, y0: Tensor, args: Any) -> tuple[Carry, int]:
        """The slope at `(t0, y0)` is evaluated by the next step, which knows the direction of
        time (and so where the delayed times lie), but counted here: the loop charges a
        restart to the restarted samples only, while that step evaluates every sample's slope
        when any is stale (the others keep theirs), so each sample's count is its own."""
        return (_State(),), 1

    def step(
        self, term: DelayTerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """One step of the inner solver with the delayed values bound in; see the class docstring."""
        state: _State = carry[0]
        history = state.history
        if history is None:
            direction = torch.where(h < 0, -1.0, 1.0).to(t0.dtype)
            history = History.empty(t0, direction, self.chunk_size)
        stale = state.stale if state.slope is not None else None
        start_slope = state.slope
        fresh_start = start_slope is None or stale is None or _any(stale)
        times = stage_times(t0, h, self.solver.nodes)
        field = _DelayedStages(term, history, t0, h, y0, times, 0 if fresh_start else 1, args)
        if fresh_start:  # counted by `init`
            fresh = field(0, y0)
            start_slope = fresh if start_slope is None or stale is None else _where_rows(stale, fresh, start_slope)
        out = self.solver.step_stages(field, y0, h, (start_slope,), True)
        if out.coeffs is None:
            raise IncompatibleTermError(f"{type(self.solver).__name__} gave no dense output, which the history needs")
        coeffs = as_coefficients(out.coeffs)
        output = _StepOutput(history, Record(t0, t0 + h, y0, coeffs), out.carry[0], start_slope, h != 0)
        new_state = dataclasses.replace(state, step=output)
        coeffs = coeffs if dense else None
        return StepResult(out.y1, out.error, (new_state,), out.evals, coeffs, out.failed)

    def merge_carry(self, rows: Tensor, new: Carry, old: Carry) -> Carry:
        """Commit the step for the `[B]` samples in `rows` (append it to their history), or
        mark the restarted samples' slopes stale (`new` from `init` after a breakpoint)."""
        fresh: _State = new[0]
        kept: _State = old[0]
        output = fresh.step
        if output is None:
            if kept.stale is None:
                return old
            return (dataclasses.replace(kept, stale=kept.stale | rows),)
        moved = rows & output.moved
        history = output.history.append(output.record, moved)
        previous = output.start_slope if kept.slope is None else kept.slope
        stale = ~output.moved if kept.stale is None else torch.where(output.moved, False, kept.stale)
        slope = _where_rows(moved, output.end_slope, _where_rows(output.moved, output.start_slope, previous))
        return (_State(history=history, slope=slope, stale=stale),)


@torch.compiler.disable
def _any(rows: Tensor) -> bool:
    """Whether any of the `[B]` `rows` is set (read eagerly: it decides which stages run)."""
    return bool(rows.any())


def _where_rows(rows: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(rows.reshape(rows.shape + (1,) * (new.ndim - 1)), new, old)


__all__ = ["MethodOfSteps"]
