"""How a sequence model plugs into the solver core.

Every model maps an [`IrregularBatch`][neuralct.data.IrregularBatch] to predictions and reports
what solving it cost. Two families share the machinery here:

- **Continuous models** (`AbstractContinuousModel`: LTC, neural CDE, ANCDE, noisy RNN,
  tau-GRU) are one equation over the whole series. They define `initial_state(batch)`,
  `term(batch)` (building their input or control path from the batch) and
  `readout(solution, batch)`; `run` solves the term over each sample's own observation times
  with the model's `default_solve_options()` or the options given. Each sample stops at its
  own last real time (`solve(..., lengths=...)`), so its predictions and cost are those it
  has alone, whatever the length of its batch mates.
- **Jump models** (`AbstractJumpModel`: ODE-RNN, GRU-D, GRU with time gaps) evolve a state
  between observations (by an ODE, or not at all) and update it at each observation. They
  define `initial_state`, `flow` (the ODE between observations, or `None`), `update(h, batch,
  k)` and `readout(h, batch)`; `run` loops over the observation positions with per-sample
  times. Padded positions never change a sample's state.

Swapping numerics never touches a model: `model(batch, options)` with other
[`SolveOptions`][neuralct.models.SolveOptions] solves the same equation with another solver.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_instance, check_int
from ..controllers import AbstractController
from ..data.series import IrregularBatch
from ..errors import InvalidInputError
from ..gradients import AbstractGradient, Backprop
from ..paths.piecewise_constant import PiecewiseConstantPath
from ..problem import AbstractRunner
from ..solution import Solution, SolveStats, empty_stats
from ..solve import solve
from ..solvers.base import AbstractSolver
from ..terms.base import AbstractTerm
from ..terms.ode import ODETerm

VectorField = Callable[[Tensor, Tensor, Any], Tensor]


@dataclass(frozen=True)
class SolveOptions:
    """The numerics of a model: every argument of [`solve`][neuralct.solve.solve] but the
    term, the initial state and the times.

    Args:
        solver: the solver object, e.g. `nct.Tsit5()`.
        controller: the step-size controller, e.g. `nct.PIDController(rtol=1e-3)`.
        gradient: how gradients flow through the solve (`nct.Backprop()` by default).
        dt0: first step magnitude, or `None` to let the controller choose.
        max_steps: steps allowed per sample before it fails with `MAX_STEPS`.
        throw: raise `SolveFailed` on a failed sample (else return its status).
        compile: run each step through `torch.compile` (see `solve`'s `compile`).
    """

    solver: AbstractSolver | AbstractRunner
    controller: AbstractController
    gradient: AbstractGradient = field(default_factory=Backprop)
    dt0: float | None = None
    max_steps: int = 4096
    throw: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        check_instance("solver", self.solver, (AbstractSolver, AbstractRunner))
        check_instance("controller", self.controller, AbstractController)
        check_instance("gradient", self.gradient, AbstractGradient)
        check_int("max_steps", self.max_steps)

    def describe(self) -> str:
        """A short label such as `"MethodOfSteps(RK4) + KnotToKnot"` for tables and logs."""
        solver = type(self.solver).__name__
        inner = getattr(self.solver, "solver", None)
        if isinstance(inner, AbstractSolver):
            solver += f"({type(inner).__name__})"
        return f"{solver} + {type(self.controller).__name__}"

    def solve_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `solve` these options stand for."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ModelOutput:
    """Predictions with what the solves behind them cost.

    Args:
        predictions: `[B, O]` (or `[B, K, O]` for sequence outputs).
        stats: per-sample [`SolveStats`][neuralct.SolveStats], summed over every solve of the
            forward pass (zeros for a model with no solve).
    """

    predictions: Tensor
    stats: SolveStats


class AbstractSequenceModel(nn.Module, abc.ABC):
    """A model from an irregular batch to predictions; `forward` returns the predictions only."""

    @abc.abstractmethod
    def run(self, batch: IrregularBatch, options: SolveOptions | None = None) -> ModelOutput:
        """Predictions and solve statistics for `batch` under `options` (default: the model's)."""

    @abc.abstractmethod
    def default_solve_options(self) -> SolveOptions | None:
        """The numerics the model is meant to run with (`None` for a model without a solve)."""

    def forward(self, batch: IrregularBatch, options: SolveOptions | None = None) -> Tensor:
        """`[B, O]` predictions for `batch`."""
        return self.run(batch, options).predictions


class AbstractContinuousModel(AbstractSequenceModel):
    """A model that is one equation over the whole series, solved once per forward pass."""

    @abc.abstractmethod
    def initial_state(self, batch: IrregularBatch) -> Tensor:
        """`[B, *state]` state at each sample's first observation time."""

    @abc.abstractmethod
    def term(self, batch: IrregularBatch) -> AbstractTerm:
        """The term to solve for `batch` (its input or control path built from the batch)."""

    @abc.abstractmethod
    def readout(self, solution: Solution, batch: IrregularBatch) -> Tensor:
        """Predictions from the solution saved at `save_times(batch)`."""

    def save_times(self, batch: IrregularBatch) -> Tensor:
        """`[B, K]` times to save the state at: each sample's observation times by default."""
        return batch.times

    def solution(self, batch: IrregularBatch, options: SolveOptions | None = None) -> Solution:
        """The solve behind `run`: `term(batch)` from `initial_state(batch)` over `save_times(batch)`
        under `options` (default: the model's own numerics), each sample up to its last real
        time (see `solve_to_ends`)."""
        options = options if options is not None else self.default_solve_options()
        return solve_to_ends(self.term(batch), self.initial_state(batch), self.save_times(batch), batch, options)

    def run(self, batch: IrregularBatch, options: SolveOptions | None = None) -> ModelOutput:
        """Solve (`solution`), then read out."""
        solution = self.solution(batch, options)
        return ModelOutput(self.readout(solution, batch), solution.stats)


class AbstractJumpModel(AbstractSequenceModel):
    """A state that flows between observations and jumps at each of them.

    `run` starts from `initial_state(batch)` at each sample's first time and, for every position
    k = 0, ..., T - 1: flows the state from `times[:, k - 1]` to `times[:, k]` with `flow` (when
    it is not `None`, k > 0), then applies `update(h, batch, k)`. A sample's padded positions
    leave its state as it was at its last real observation.
    """

    @abc.abstractmethod
    def initial_state(self, batch: IrregularBatch) -> Tensor:
        """`[B, D]` state before the first observation."""

    @property
    @abc.abstractmethod
    def flow(self) -> VectorField | None:
        """The vector field `f(t, h, args)` between observations, or `None` (no evolution)."""

    @abc.abstractmethod
    def update(self, h: Tensor, batch: IrregularBatch, k: int) -> Tensor:
        """`[B, D]` state after seeing observation `k` (`batch.values[:, k]`, `batch.mask[:, k]`)."""

    @abc.abstractmethod
    def readout(self, h: Tensor, batch: IrregularBatch) -> Tensor:
        """Predictions from the `[B, D]` state after each sample's last observation."""

    def run(self, batch: IrregularBatch, options: SolveOptions | None = None) -> ModelOutput:
        """Alternate flows and updates over the observations; see the class docstring.

        Raises:
            InvalidInputError: `options` given to a model without a flow (it solves nothing).
        """
        if options is not None and self.flow is None:
            raise InvalidInputError(
                f"{type(self).__name__} has no flow between observations, so `options` must be None"
            )
        options = options if options is not None else self.default_solve_options()
        stats = empty_stats(batch.batch_size, batch.times.device)
        h = self.initial_state(batch)
        for k in range(batch.max_length):
            valid = batch.valid[:, k : k + 1]
            if k > 0 and self.flow is not None:
                h, stats = self._flow(h, batch.times[:, k - 1 : k + 1], batch.valid[:, k], options, stats)
            h = torch.where(valid, self.update(h, batch, k), h)
        return ModelOutput(self.readout(h, batch), stats)

    def _flow(
        self, h: Tensor, times: Tensor, rows: Tensor, options: SolveOptions | None, stats: SolveStats
    ) -> tuple[Tensor, SolveStats]:
        """Flow the samples in `rows` `[B]` over their gap `times` `[B, 2]`; padded samples are
        not solved at all (no cost, and no failure in the padding)."""
        if options is None:
            raise InvalidInputError(f"{type(self).__name__} has a flow, so it needs `options` (SolveOptions)")
        index = rows.nonzero().squeeze(1)
        if index.numel() == 0:
            return h, stats
        solution = solve(ODETerm(self.flow), h[index], times[index], **options.solve_kwargs())
        h = h.index_put((index,), solution.ys[:, -1])
        return h, _add_stats(stats, index, solution.stats)


def solve_to_ends(
    term: AbstractTerm, y0: Tensor, times: Tensor, batch: IrregularBatch, options: SolveOptions
) -> Solution:
    """`solve` over save times `times` `[B, K]` in which each sample ends at its last real
    observation time (`batch.last_time`): the save times past it are padding, not solved
    (`solve(..., lengths=...)`), and its outputs there repeat its last one.

    Args:
        term: the model's term for `batch`.
        y0: `[B, *state]` initial state.
        times: `[B, K]` save times: the batch's times, possibly after a lead-in time.
        batch: the batch, for its last real times.
        options: the numerics.
    """
    lengths = (times <= batch.last_time.to(times.dtype).unsqueeze(1)).sum(dim=1)
    return solve(term, y0, times, lengths=lengths, **options.solve_kwargs())


def _add_stats(total: SolveStats, index: Tensor, more: SolveStats) -> SolveStats:
    """`total` with `more` `[len(index)]` added at the samples `index`."""
    names = ("vf_evals", "steps", "accepted", "rejected")
    return SolveStats(*(getattr(total, n).index_add(0, index, getattr(more, n)) for n in names))


def last_observed(ys: Tensor, batch: IrregularBatch) -> Tensor:
    """`[B, *state]` the saved state at each sample's last real position, from `ys` `[B, T, *state]`."""
    index = batch.last_index.view(-1, *([1] * (ys.dim() - 1))).expand(-1, 1, *ys.shape[2:])
    return ys.gather(1, index).squeeze(1)


class HeldInput:
    """The observations of a batch as the input of the gaps that end at them.

    $x(t) = x_k$ on $[t_{k-1}, t_k)$: observation $k$ is the input over the gap that ends at
    it, as a discrete RNN reads $x_k$ in the step that ends at $t_k$; $x_0$ before $t_0$ and the
    last value after. At a knot the path reads from the right (the gap that starts there), so a
    method that evaluates the field at the start of a step (Euler-Maruyama, the method of steps
    after a breakpoint) and one that evaluates it just short of the step's end (explicit
    Runge-Kutta, see `AbstractSolver.reads_step_end`) see the same $x_k$. Missing values carry
    the channel's last observation forward (a channel before its first observation takes that
    first observation); padding holds each sample's last value.

    Args:
        batch: the batch; `times` `[B, T]`, `values` `[B, T, C]`.

    Attributes:
        times: `[B, T]` the knots; values: `[B, T, C]` the filled observations; channels: C.
    """

    def __init__(self, batch: IrregularBatch):
        filled = PiecewiseConstantPath(batch.with_nan(), batch.times)
        self.times, self.values, self.channels = filled.times, filled.values, filled.channels
        self._jumps = filled.jump_times()

    def jump_times(self) -> Tensor:
        """`[B, T - 1]` the knots after which the input changes."""
        return self._jumps

    def evaluate(self, t: Tensor) -> Tensor:
        """`[B, C]` the input at times `t` `[B]`."""
        query = t.detach().to(self.times.dtype).reshape(-1, 1).contiguous()
        index = torch.searchsorted(self.times, query, right=True).clamp_max(self.times.shape[1] - 1)
        return self.values.gather(1, index[..., None].expand(-1, 1, self.channels)).squeeze(1)


def held_input(batch: IrregularBatch) -> HeldInput:
    """The batch's observations as a piecewise-constant input path for an RNN-like vector field
    (see [`HeldInput`][neuralct.models.base.HeldInput]).

    Pass it as the term's `inputs` (`ODETerm(f, inputs=path)`, `DelayTerm(..., inputs=path)`)
    so that its knots become jump times: every solver then lands on each observation time and
    no step straddles a jump of the input.
    """
    return HeldInput(batch)


def lead_in_times(batch: IrregularBatch, first_gap: float) -> Tensor:
    """`[B, T + 1]`: each sample's $t_0$ - `first_gap`, then its times. A model whose state
    starts there (at 0) reads $x_0$ over a first gap of length `first_gap`, as ncps's cells do
    with their default elapsed time 1."""
    return torch.cat([batch.times[:, :1] - first_gap, batch.times], dim=1)
