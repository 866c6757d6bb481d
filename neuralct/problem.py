"""What `solve` hands over once it has checked its inputs: a `Problem`, to a gradient strategy
(which runs neuralct's step loop) or to an `AbstractRunner` (which integrates it its own way)."""

from __future__ import annotations

import abc
import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ._checks import check_instance
from .controllers.base import AbstractController
from .events import Event
from .solution import Solution
from .solvers.base import AbstractSolver, check_term_type
from .terms.base import AbstractTerm


@dataclass(frozen=True)
class Problem:
    """Everything fixed during a solve, checked by `solve`.

    The derived values below are cached properties, computed on first use (for
    `compile=True`, all of them before the step is traced: see `neuralct._loop.compile`).

    Attributes:
        term: what is integrated.
        solver: the step solver that neuralct's loop drives, or the runner that integrates
            the whole problem.
        controller: the step-size controller.
        ts: `[B, K]` save times, each row strictly monotonic.
        direction: `[B]` +1 where a sample integrates forward in time, -1 backward.
        args: passed unchanged to the vector field(s).
        max_steps: steps (accepted or rejected) allowed per sample.
        dt0: first step magnitude, or `None` to choose it per sample.
        dense: whether the solution keeps its dense interpolant.
        jumps: `[B, J]` times the steps must land on (the term's discontinuities), or `None`.
        compile: whether each step runs through `torch.compile`.
        lengths: `[B]` sample b ends at its save time `lengths[b] - 1` (the later columns of
            its row are padding), or `None`: every sample ends at `ts[:, -1]`.
        event: the zero crossings to stop at or record (`neuralct.events.Event`), or `None`.
        save_steps: whether the solution saves every accepted step instead of the times `ts`
            (which then hold each sample's start and end only).
        compact: whether the loop moves the running samples into a smaller batch once at
            most half of the batch runs (`neuralct._loop.compaction`).
    """

    term: AbstractTerm
    solver: AbstractSolver | AbstractRunner
    controller: AbstractController
    ts: Tensor
    direction: Tensor
    args: Any
    max_steps: int
    dt0: float | None
    dense: bool
    jumps: Tensor | None
    compile: bool = False
    lengths: Tensor | None = None
    event: Event | None = None
    save_steps: bool = False
    compact: bool = False

    def __post_init__(self) -> None:
        check_instance("compact", self.compact, bool)

    @functools.cached_property
    def interpolate_saves(self) -> bool:
        """Adaptive solves with dense output interpolate save times instead of stepping onto
        them. A solve from one time to another has nothing between them to interpolate: it
        takes the same steps either way and keeps no window of step records."""
        stepper = isinstance(self.solver, AbstractSolver) and self.solver.interpolates_saves
        return self.controller.adaptive and stepper and self.ts.shape[1] > 2

    @functools.cached_property
    def key_times(self) -> Tensor:
        """`[B, K]` save times times the direction: increasing in every row."""
        return self.along(self.ts).contiguous()

    @functools.cached_property
    def forward(self) -> bool:
        """Whether every sample integrates forward in time."""
        return bool((self.direction > 0).all())

    def along(self, t: Tensor) -> Tensor:
        """`t` `[B, ...]` times each sample's direction: increasing along its solve."""
        return t if self.forward else self.direction.reshape(t.shape[:1] + (1,) * (t.ndim - 1)) * t

    @functools.cached_property
    def jump_table(self) -> Tensor | None:
        """`[B, J + 1]` the jump times with an infinite time in each sample's direction after
        the last, so `next_jump` (at most J) always indexes a row's next jump."""
        if self.jumps is None:
            return None
        return torch.cat([self.jumps, (self.direction * torch.inf).unsqueeze(1)], dim=1)

    @functools.cached_property
    def t_end(self) -> Tensor:
        """`[B]` last save time of each sample."""
        if self.lengths is None:
            return self.ts[:, -1].contiguous()
        return self.ts.gather(1, (self.lengths - 1)[:, None]).squeeze(1)

    @functools.cached_property
    def save_counts(self) -> Tensor | int:
        """How many save times each sample has: `lengths` `[B]`, or K for every sample."""
        return self.ts.shape[1] if self.lengths is None else self.lengths

    @functools.cached_property
    def time_slack(self) -> Tensor:
        """`[B]` a few ulps of the largest time magnitude each sample meets: how far a fixed step,
        whose rounding accumulates over the span, may fall short of a boundary by rounding alone
        (an adaptive step's slack is that of its own times, see `_loop.clock.reach`)."""
        largest = torch.maximum(self.ts[:, 0].abs(), self.t_end.abs())
        return 4 * torch.finfo(self.ts.dtype).eps * largest

    @functools.cached_property
    def want_coefficients(self) -> bool:
        """Whether steps must return dense-output coefficients (events locate their crossings
        on them)."""
        return self.interpolate_saves or self.dense or self.event is not None


class AbstractRunner(abc.ABC):
    """A method that integrates a whole [`Problem`][neuralct.problem.Problem] its own way
    instead of stepping in neuralct's loop: a peer library ([`TorchDiffEq`][neuralct.TorchDiffEq],
    [`TorchSDE`][neuralct.backends.TorchSDE]) or the log-ODE method of the neural CDEs
    (`neuralct.models.log_ode.LogODE`).

    It is passed as the `solver` of [`solve`][neuralct.solve.solve], which checks the inputs as
    for any solver, the term (`check_term`) and the controller (`controller.check_solver`, which
    reads `adaptive`), then calls `integrate` in place of the gradient strategy: gradients
    flow the runner's own way.

    Attributes:
        term_types: the term classes the runner can integrate.
    """

    term_types: ClassVar[tuple[type, ...]] = ()

    @property
    @abc.abstractmethod
    def order(self) -> float:
        """The method's (strong, for SDEs) order of convergence."""

    @property
    def error_order(self) -> int | None:
        """Order of the error estimate that adapts its steps, or `None` for a fixed grid."""
        return None

    @property
    def adaptive(self) -> bool:
        """Whether an adaptive controller can drive it (it has an error estimate)."""
        return self.error_order is not None

    def check_term(self, term: AbstractTerm) -> None:
        """Raise `IncompatibleTermError` when this runner cannot integrate `term`."""
        check_term_type(self, term)

    def jump_times(self, term: AbstractTerm, ts: Tensor) -> Tensor | None:
        """The times to land on when integrating `term` over save times `ts` `[B, K]`: the
        term's `jump_times`."""
        return term.jump_times(ts)

    @abc.abstractmethod
    def integrate(self, problem: Problem, y0: Tensor) -> Solution:
        """Solve `problem` from `y0` `[B, *state]`.

        Returns:
            A `Solution` with `ts` `problem.ts` `[B, K]`, `ys` `[B, K, *state]` and per-sample
            `status` and `stats` `[B]`.
        """


__all__ = ["AbstractRunner", "Problem"]
