"""The result of a solve: saved states, per-sample statuses, statistics and dense output."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import InvalidInputError
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
        EVENT: a terminal event stopped the sample at a zero crossing (a success).
    """

    SUCCESS = 0
    MAX_STEPS = 1
    DT_UNDERFLOW = 2
    NONFINITE = 3
    NEWTON_FAILED = 4
    EVENT = 5


# What to change, per failure, in the message of `SolveFailed`.
_ADVICE = {
    Status.MAX_STEPS: "raise max_steps ({max_steps}), loosen rtol/atol, or, if the problem is stiff, "
    "try an implicit solver (nct.ImplicitEuler())",
    Status.DT_UNDERFLOW: "the step size vanished: the solution may blow up or be stiff; try an implicit solver "
    "(nct.ImplicitEuler()), looser tolerances or a smaller dt_min",
    Status.NONFINITE: "the state or error estimate became NaN/inf: check the vector field for overflow or "
    "domain errors, or take smaller steps",
    Status.NEWTON_FAILED: "Newton's iteration did not converge: take smaller steps or allow more iterations",
}


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
        mask: `[B, K]` which outputs a sample reached at their own times, in solves with an
            event or `SaveAt(steps=True)`; `None` otherwise. Outputs past a terminal event hold
            the event state, outputs past a sample's last step its last state, outputs past
            `lengths` its last output.
        event_t: the crossing times of an event, NaN where none: `[B]` for a terminal event,
            `[B, N]` (the first N = `max_crossings`, in order) for a non-terminal one; `None`
            without an event.
        event_y: `[B, *state]` or `[B, N, *state]` the states at `event_t` (NaN where none).
        event_count: `[B]` crossings each sample met (all of them, also past the N kept).
    """

    ts: Tensor
    ys: Tensor
    status: Tensor
    stats: SolveStats
    t_final: Tensor
    y_final: Tensor
    dense: DenseInterpolant | None = None
    mask: Tensor | None = None
    event_t: Tensor | None = None
    event_y: Tensor | None = None
    event_count: Tensor | None = None

    @property
    def succeeded(self) -> Tensor:
        """`[B]` boolean: which samples reached the end, or stopped at a terminal event."""
        return (self.status == Status.SUCCESS) | (self.status == Status.EVENT)

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
            raise InvalidInputError(
                "Solution.evaluate needs a solve with dense=True; this one was solved with dense=False"
            )
        return self.dense.evaluate(t)

    def derivative(self, t: Tensor) -> Tensor:
        """Time derivative of the dense solution at `[B]` or `[B, K]` times (see `evaluate`)."""
        if self.dense is None:
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


def failure_message(solution: Solution, max_steps: int, t_end: Tensor | None = None, shown: int = 5) -> str:
    """The message of `SolveFailed`: the failed samples of `solution`, where each stopped, and
    what to change.

    Args:
        solution: a solution with `status` `[B]`, some of it not `SUCCESS`.
        max_steps: the step budget of the solve, quoted in the advice.
        t_end: `[B]` where each sample's solve was to end (default: its last save time,
            `ts[:, -1]`; pass it when the saves do not reach the end, as under `SaveAt(steps=True)`
            or `lengths`).
        shown: how many failed samples are listed one per line.
    """
    t_end = solution.ts[:, -1] if t_end is None else t_end
    failed = (~solution.succeeded).nonzero().flatten().tolist()
    lines = [f"solve failed for {len(failed)} of {solution.status.shape[0]} samples:"]
    for b in failed[:shown]:
        status = Status(int(solution.status[b]))
        end = float(t_end[b])
        lines.append(f"  sample {b}: {status.name} at t = {float(solution.t_final[b]):.6g} (solving to {end:.6g})")
    if len(failed) > shown:
        lines.append(f"  ... and {len(failed) - shown} more")
    coarse = [b for b in failed if _time_resolution_too_coarse(solution, b, t_end)]
    reasons = {Status(int(solution.status[b])) for b in failed if b not in coarse}
    for status in sorted(reasons):
        lines.append(f"{status.name}: {_ADVICE[status].format(max_steps=max_steps)}")
    if coarse:
        lines.append(_resolution_advice(solution, coarse[0], t_end))
    lines.append("Pass throw=False to get the partial solution and per-sample statuses instead.")
    return "\n".join(lines)


def _time_resolution_too_coarse(solution: Solution, b: int, t_end: Tensor) -> bool:
    """Whether sample `b` failed with DT_UNDERFLOW where its time dtype cannot resolve a
    millionth of its span: its step vanished by rounding rather than by error control."""
    if int(solution.status[b]) != Status.DT_UNDERFLOW:
        return False
    ulp = torch.finfo(solution.ts.dtype).eps * solution.t_final[b].abs()
    return bool(ulp > 1e-6 * (t_end[b] - solution.ts[b, 0]).abs())


def _resolution_advice(solution: Solution, b: int, t_end: Tensor) -> str:
    """What to change for sample `b`, whose step vanished below its times' resolution."""
    t = solution.t_final[b]
    ulp = float(torch.finfo(t.dtype).eps * t.abs())
    span = float((t_end[b] - solution.ts[b, 0]).abs())
    return (
        f"DT_UNDERFLOW (sample {b}): the step vanished by rounding, not by stiffness: {t.dtype} times near "
        f"t = {float(t):.6g} resolve no step below about {ulp:.2g}, too coarse for a span of {span:.6g}; shift "
        f"the times to start near 0, or pass the times in float64 (the state may stay {solution.ys.dtype})"
    )
