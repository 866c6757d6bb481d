"""Dense output of a solve: the piecewise-polynomial interpolant over accepted steps.

Every solver describes the solution on a step $[t_0, t_1]$ as a polynomial in
$\\theta = (t - t_0) / (t_1 - t_0)$,
$y(\\theta) = y_0 + \\sum_{p=1}^{P} c_p \\theta^p$; this module stores those
coefficients per sample and evaluates them at per-sample times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..errors import InvalidInputError


def evaluate_polynomial(y0: Tensor, coeffs: Tensor, theta: Tensor) -> Tensor:
    """Evaluate $y_0 + \\sum_p c_p \\theta^p$ by Horner's rule.

    Elementwise operations only, so a sample's value never depends on its batch mates.
    `y0`, `coeffs` and `theta` broadcast against each other over the leading dimensions.

    Args:
        y0: `[..., *state]` value at $\\theta = 0$.
        coeffs: `[..., P, *state]` coefficients $c_1 .. c_P$.
        theta: `[...]` normalized times.

    Returns:
        `[..., *state]` interpolated values.
    """
    lead = theta.ndim
    theta = theta.reshape(theta.shape + (1,) * (coeffs.ndim - lead - 1))
    acc = coeffs.select(lead, -1)
    for p in range(coeffs.shape[lead] - 2, -1, -1):
        acc = torch.addcmul(coeffs.select(lead, p), acc, theta)
    return torch.addcmul(y0, acc, theta)


@dataclass(frozen=True)
class StageCoefficients:
    """Dense-output coefficients of one Runge-Kutta step, kept as the step's stages until
    they are needed: $c_p = h \\sum_i D_{p,i} k_i$.

    Forming them costs several tensor operations per step, which dominate the cost of a
    step for small neural vector fields; `stack_coefficients` forms them for many steps in
    one batch, and only when a save time or the dense output asks for them.

    Attributes:
        stages: the step's `S` stages, each `[B, *state]`.
        step: `[B, 1, ...]` the signed step size, broadcast against the state.
        matrix: `[P, S]` the tableau's dense-output matrix D.
    """

    stages: tuple[Tensor, ...]
    step: Tensor
    matrix: Tensor

    def materialize(self) -> Tensor:
        """`[B, P, *state]` the coefficients."""
        return stack_coefficients((self,), dim=1).squeeze(1)


Coefficients = Tensor | StageCoefficients


def stack_coefficients(parts: Sequence[Coefficients], dim: int) -> Tensor:
    """Stack the coefficients of several steps (all tensors `[B, P, *state]`, or all
    `StageCoefficients` of one tableau) along a new dimension `dim` (0 or 1): `[W, B, P, *state]`
    or `[B, W, P, *state]` for W steps."""
    if isinstance(parts[0], Tensor):
        return torch.stack(parts, dim=dim)
    first = parts[0]
    batch, state = first.step.shape[0], first.stages[0].shape[1:]
    count = len(first.stages)
    # [W * S, B, *state] -> [W, S, B * prod(state)]: one matrix product for every step.
    stages = torch.stack([k for part in parts for k in part.stages]).reshape(len(parts), count, -1)
    coefficients = (first.matrix @ stages).unflatten(2, (batch, *state)).movedim(2, 1)
    steps = torch.stack([part.step for part in parts]).unsqueeze(2)
    # [W, B, P, *state] scaled by each step's size.
    coefficients = coefficients * steps
    return coefficients if dim == 0 else coefficients.movedim(0, 1)


def as_coefficients(coefficients: Coefficients) -> Tensor:
    """`[B, P, *state]` coefficients, formed from the stages where they were kept."""
    return coefficients if isinstance(coefficients, Tensor) else coefficients.materialize()


def polynomial_derivative(coeffs: Tensor, theta: Tensor) -> Tensor:
    """$d/d\\theta$ of the polynomial of `evaluate_polynomial`; shapes as there."""
    lead = theta.ndim
    theta = theta.reshape(theta.shape + (1,) * (coeffs.ndim - 1 - theta.ndim))
    degree = coeffs.shape[lead]
    acc = degree * coeffs.select(lead, -1)
    for p in range(degree - 2, -1, -1):
        acc = (p + 1) * coeffs.select(lead, p) + theta * acc
    return acc


def accepted_end_keys(t1: Tensor, accepted: Tensor, direction: Tensor) -> Tensor:
    """`[B, S]` running maximum of the signed end times `direction * t1` of the accepted
    steps (`-inf` before the first): `searchsorted` over it finds, for a signed time, the
    accepted step that covers it.

    Args:
        t1: `[B, S]` end time of each recorded step.
        accepted: `[B, S]` which recorded steps were accepted.
        direction: `[B]` +1 for forward solves, -1 for backward ones.
    """
    key = torch.where(accepted, direction[:, None] * t1, -torch.inf)
    return torch.cummax(key, dim=1).values


class DenseInterpolant:
    """Per-sample piecewise-polynomial solution built from a solve's step records.

    Args:
        t0: `[B, S]` start time of each recorded step.
        t1: `[B, S]` end time of each recorded step.
        y0: `[B, S, *state]` state at each step start.
        coeffs: `[B, S, P, *state]` polynomial coefficients of each step.
        accepted: `[B, S]` which recorded steps were accepted (only those are used).
        direction: `[B]` +1 for forward solves, -1 for backward ones.
        stop: `[B]` where each sample's solved interval ends when that is inside its last
            accepted step (a terminal event stopped it there), or `None`: at that step's end.
    """

    batched_times: ClassVar[bool] = True  # `derivative` takes `[B, Q]` times (see `PerSamplePath`)

    def __init__(
        self,
        t0: Tensor,
        t1: Tensor,
        y0: Tensor,
        coeffs: Tensor,
        accepted: Tensor,
        direction: Tensor,
        stop: Tensor | None = None,
    ):
        self.t0, self.t1, self.y0, self.coeffs = t0, t1, y0, coeffs
        self.direction = direction
        self._end_key = accepted_end_keys(t1, accepted, direction)
        # The last end key, or the stop short of it: what `_locate` checks the times against.
        self._last_key = self._end_key[:, -1:] if stop is None else (direction * stop)[:, None]
        first = torch.argmax(accepted.to(torch.int8), dim=1)
        self._start_key = direction * t0.gather(1, first[:, None]).squeeze(1)
        self._any = accepted.any(dim=1)

    def _queries(self, t: Tensor) -> tuple[Tensor, bool]:
        """`[B]` or `[B, Q]` query times as `[B, Q]`, and whether they were `[B]`."""
        batch = self.t0.shape[0]
        if not isinstance(t, Tensor) or t.ndim not in (1, 2) or t.shape[0] != batch:
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise InvalidInputError(f"`t` must be [B] or [B, K] with B = {batch}; got {got}")
        return (t[:, None], True) if t.ndim == 1 else (t, False)

    def _locate(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Step index `[B, Q]` and normalized time `[B, Q]` for query times `[B, Q]`."""
        key = self.direction[:, None] * t
        end = self._last_key
        outside = (~self._any[:, None]) | ~(key >= self._start_key[:, None]) | ~(key <= end)
        if bool(outside.any()):
            b, q = (int(i) for i in outside.nonzero()[0])
            raise InvalidInputError(
                f"`t` must lie inside each sample's solved interval; sample {b} asks t[{b}, {q}] = "
                f"{float(t[b, q]):.6g}, outside [{float(self.direction[b] * self._start_key[b]):.6g}, "
                f"{float(self.direction[b] * end[b, 0]):.6g}]"
            )
        index = torch.searchsorted(self._end_key, key.contiguous()).clamp_max(self.t0.shape[1] - 1)
        t0 = self.t0.gather(1, index)
        h = self.t1.gather(1, index) - t0
        return index, (t - t0) / h

    def _gather(self, tensor: Tensor, index: Tensor) -> Tensor:
        batch = torch.arange(index.shape[0], device=index.device)[:, None]
        return tensor[batch, index]

    def evaluate(self, t: Tensor) -> Tensor:
        """Interpolated state at `[B]` or `[B, Q]` times -> `[B, *state]` or `[B, Q, *state]`."""
        tq, single = self._queries(t)
        index, theta = self._locate(tq)
        out = evaluate_polynomial(
            self._gather(self.y0, index), self._gather(self.coeffs, index), theta.to(self.y0.dtype)
        )
        return out[:, 0] if single else out

    def derivative(self, t: Tensor) -> Tensor:
        """Time derivative at `[B]` or `[B, Q]` times -> `[B, *state]` or `[B, Q, *state]`."""
        tq, single = self._queries(t)
        index, theta = self._locate(tq)
        h = (self.t1.gather(1, index) - self.t0.gather(1, index)).to(self.y0.dtype)
        dtheta = polynomial_derivative(self._gather(self.coeffs, index), theta.to(self.y0.dtype))
        out = dtheta / h.reshape(h.shape + (1,) * (dtheta.ndim - 2))
        return out[:, 0] if single else out
