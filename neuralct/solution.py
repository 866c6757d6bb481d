"""The result of a solve: saved states, per-sample statuses, statistics and dense output."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import Tensor

from .paths.dense import DenseInterpolant


class Status(enum.IntEnum):
    """Per-sample outcome of a solve.

    Attributes:
        SUCCESS: the sample reached its last save time.
        MAX_STEPS: the sample used `max_steps` steps before reaching the end.
        DT_UNDERFLOW: the step size fell below `dt_min` or vanished in floating point.
        NONFINITE: the state, or every error estimate tried, became NaN or infinite.
        NEWTON_FAILED: an implicit solver's Newton iteration did not converge at the
            smallest step size.
    """

    SUCCESS = 0
    MAX_STEPS = 1
    DT_UNDERFLOW = 2
    NONFINITE = 3
    NEWTON_FAILED = 4


@dataclass(frozen=True)
class SolveStats:
    """Per-sample counters of a solve, each a `[B]` integer tensor.

    Attributes:
        vf_evals: vector-field evaluations made for the sample (including the ones
            spent choosing the initial step and on rejected steps).
        steps: steps attempted (accepted + rejected).
        accepted: steps accepted.
        rejected: steps rejected by the error controller.
    """

    vf_evals: Tensor
    steps: Tensor
    accepted: Tensor
    rejected: Tensor

    def total(self) -> dict[str, int]:
        """Sum of every counter over the batch, as Python integers."""
        return {name: int(getattr(self, name).sum()) for name in ("vf_evals", "steps", "accepted", "rejected")}


@dataclass(frozen=True)
class Solution:
    """What `solve` returns.

    Attributes:
        ts: `[B, K]` the save times of each sample.
        ys: `[B, K, *state]` the state at each save time. Save times a failed sample
            never reached hold NaN.
        status: `[B]` integer tensor of [`Status`][neuralct.Status] codes.
        stats: per-sample [`SolveStats`][neuralct.SolveStats].
        t_final: `[B]` the time each sample reached (its last save time on success).
        y_final: `[B, *state]` the state at `t_final`, also for samples that failed.
        dense: the dense interpolant over the accepted steps, when `dense=True`.
    """

    ts: Tensor
    ys: Tensor
    status: Tensor
    stats: SolveStats
    t_final: Tensor
    y_final: Tensor
    dense: DenseInterpolant | None = None

    @property
    def succeeded(self) -> Tensor:
        """`[B]` boolean: which samples reached the end."""
        return self.status == Status.SUCCESS

    def evaluate(self, t: Tensor) -> Tensor:
        """Evaluate the dense solution at per-sample times.

        Args:
            t: `[B]` or `[B, K]` times inside each sample's solved interval.

        Returns:
            `[B, *state]` or `[B, K, *state]` interpolated states.

        Raises:
            InvalidInputError: if the solve was run without `dense=True`, or `t`
                lies outside a sample's solved interval.
        """
        if self.dense is None:
            from .errors import InvalidInputError

            raise InvalidInputError(
                "Solution.evaluate needs a solve with dense=True; this one was solved with dense=False"
            )
        return self.dense.evaluate(t)

    def derivative(self, t: Tensor) -> Tensor:
        """Time derivative of the dense solution at `[B]` or `[B, K]` times (see `evaluate`)."""
        if self.dense is None:
            from .errors import InvalidInputError

            raise InvalidInputError(
                "Solution.derivative needs a solve with dense=True; this one was solved with dense=False"
            )
        return self.dense.derivative(t)


def status_names(status: Tensor) -> list[str]:
    """Readable names for a `[B]` status tensor (for messages and logs)."""
    return [Status(int(code)).name for code in status.tolist()]


def empty_stats(batch: int, device: torch.device) -> SolveStats:
    """Zeroed counters for a batch of `batch` samples."""
    zeros = lambda: torch.zeros(batch, dtype=torch.long, device=device)  # noqa: E731
    return SolveStats(zeros(), zeros(), zeros(), zeros())
