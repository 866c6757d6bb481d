"""`Problem`: everything fixed during a solve, and the values derived from it once."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..controllers.base import AbstractController
from ..solvers.base import AbstractSolver
from ..terms.base import AbstractTerm
from .rows import gather_row


@dataclass(frozen=True)
class Problem:
    """Everything fixed during a solve. `ts` is `[B, K]`, `direction` `[B]`, `jumps` `[B, J]`
    or `None`, `lengths` `[B]` (sample b ends at its save time `lengths[b] - 1`; the later
    columns of its row are padding) or `None` (every sample ends at `ts[:, -1]`).

    The derived values below are cached properties, computed on first use (for
    `compile=True`, all of them before the step is traced: see `compile.prepare`).
    """

    term: AbstractTerm
    solver: AbstractSolver
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

    @functools.cached_property
    def interpolate_saves(self) -> bool:
        """Adaptive solves with dense output interpolate save times instead of stepping onto
        them. A solve from one time to another has nothing between them to interpolate: it
        takes the same steps either way and keeps no window of step records."""
        return self.controller.adaptive and self.solver.interpolates_saves and self.ts.shape[1] > 2

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
        return gather_row(self.ts, self.lengths - 1)

    @functools.cached_property
    def save_counts(self) -> Tensor | int:
        """How many save times each sample has: `lengths` `[B]`, or K for every sample."""
        return self.ts.shape[1] if self.lengths is None else self.lengths

    @functools.cached_property
    def time_slack(self) -> Tensor:
        """`[B]` a few ulps of the largest time magnitude each sample meets: how far a step may
        fall short of a boundary by rounding alone."""
        largest = torch.maximum(self.ts[:, 0].abs(), self.t_end.abs())
        return 4 * torch.finfo(self.ts.dtype).eps * largest

    @functools.cached_property
    def want_coefficients(self) -> bool:
        """Whether steps must return dense-output coefficients."""
        return self.interpolate_saves or self.dense
