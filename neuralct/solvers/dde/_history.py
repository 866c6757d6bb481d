"""Dense history of a delay-equation solve: the accepted steps' polynomials, per sample.

Steps are kept in the order the loop took them (every loop iteration is one column, with a
`[B]` mask of the samples that accepted it), in immutable chunks of fixed width plus a short
open tail. A lookup concatenates only the chunks that the queried times can fall in, so a
solve of N steps costs O(N) memory; chunks are shared between loop states, which keeps
checkpointed backpropagation linear too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from ...paths.dense import evaluate_polynomial


@dataclass(frozen=True)
class Record:
    """One step for every sample: `t0`, `t1` `[B]`, `y0` `[B, *state]`, `coeffs` `[B, P, *state]`
    (the polynomial $y_0 + \\sum_p c_p \\theta^p$, $\\theta = (t - t_0)/(t_1 - t_0)$)."""

    t0: Tensor
    t1: Tensor
    y0: Tensor
    coeffs: Tensor


@dataclass(frozen=True)
class Steps:
    """Several stored steps: `t0`, `t1`, `valid` `[B, W]`, `y0` `[B, W, *state]`, `coeffs`
    `[B, W, P, *state]`. Invalid entries (steps a sample did not accept) hold finite dummies."""

    t0: Tensor
    t1: Tensor
    y0: Tensor
    coeffs: Tensor
    valid: Tensor

    @staticmethod
    def concatenate(parts: list[Steps]) -> Steps:
        """Join along the step dimension."""
        if len(parts) == 1:
            return parts[0]
        fields = (torch.cat([getattr(p, f.name) for p in parts], dim=1) for f in dataclasses.fields(Steps))
        return Steps(*fields)

    @property
    def width(self) -> int:
        """Number of stored steps."""
        return self.t0.shape[1]


def _expand(mask: Tensor, like: Tensor) -> Tensor:
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def _column(record: Record, valid: Tensor) -> Steps:
    """A one-step `Steps` from `record`; rejected samples get finite dummies (no NaN can leak
    into a lookup, not even into the unused branch of a `torch.where`)."""
    t1 = torch.where(valid, record.t1, record.t0 + 1)
    y0 = torch.where(_expand(valid, record.y0), record.y0, 0.0)
    coeffs = torch.where(_expand(valid, record.coeffs), record.coeffs, 0.0)
    return Steps(record.t0[:, None], t1[:, None], y0[:, None], coeffs[:, None], valid[:, None])


@dataclass(frozen=True)
class Window:
    """Stored steps prepared for lookups at per-sample times (see `evaluate`)."""

    steps: Steps
    direction: Tensor
    end_keys: Tensor
    last: Tensor

    @staticmethod
    def build(steps: Steps, direction: Tensor) -> Window:
        """Index `steps` by their running latest accepted end time along the solve."""
        keys = torch.where(steps.valid, direction[:, None] * steps.t1, -torch.inf).detach()
        positions = torch.arange(steps.width, device=keys.device)
        last = torch.where(steps.valid, positions, 0).amax(dim=1, keepdim=True)
        return Window(steps, direction, torch.cummax(keys, dim=1).values.contiguous(), last)

    def evaluate(self, times: Tensor) -> Tensor:
        """Solution at `times` `[B, Q]` -> `[B, Q, *state]` from the step covering each time.

        Times past the last accepted step extrapolate it (by rounding only: the step loop
        never queries the future).
        """
        steps = self.steps
        keys = (self.direction[:, None] * times).detach().contiguous()
        index = torch.minimum(torch.searchsorted(self.end_keys, keys), self.last)
        rows = torch.arange(index.shape[0], device=index.device)[:, None]
        flat = (rows * steps.width + index).flatten()
        t0 = _take(steps.t0, flat, index.shape)
        theta = ((times - t0) / (_take(steps.t1, flat, index.shape) - t0)).to(steps.y0.dtype)
        return evaluate_polynomial(_take(steps.y0, flat, index.shape), _take(steps.coeffs, flat, index.shape), theta)


def _take(table: Tensor, flat: Tensor, shape: torch.Size) -> Tensor:
    """`table[b, index[b, q]]` for a `[B, W, ...]` table, given the flat row-major indices
    `b * W + index[b, q]`; `shape` is `index.shape`. (`index_select` on the flattened table:
    on CPU it is orders of magnitude faster than advanced indexing for wide rows, and its
    backward keeps only the indices.)"""
    rest = table.shape[2:]
    return table.reshape(-1, *rest).index_select(0, flat).reshape(*shape, *rest)


@dataclass(frozen=True)
class History:
    """The accepted steps of a solve so far, per sample.

    Attributes:
        start: `[B]` each sample's start time $t_0$ (the history function covers before it).
        direction: `[B]` +1 forward, -1 backward in time.
        chunk_size: steps per closed chunk.
        chunks: closed chunks, each `Steps` of width `chunk_size`.
        tail: the open chunk's columns (fewer than `chunk_size`).
        ends: `[B, len(chunks)]` latest accepted end time (times direction) up to each chunk.
    """

    start: Tensor
    direction: Tensor
    chunk_size: int
    chunks: tuple[Steps, ...] = ()
    tail: tuple[Steps, ...] = ()
    ends: Tensor | None = None

    @staticmethod
    def empty(start: Tensor, direction: Tensor, chunk_size: int) -> History:
        """No steps yet, from `start` `[B]` in `direction` `[B]`."""
        return History(start, direction, chunk_size)

    # Under `compile=True` a step's history grows eagerly between the compiled pieces.
    @torch.compiler.disable
    def append(self, record: Record, valid: Tensor) -> History:
        """Add `record` for the `[B]` samples in `valid` (nothing when no sample accepted)."""
        if not bool(valid.any()):
            return self
        tail = self.tail + (_column(record, valid),)
        if len(tail) < self.chunk_size:
            return dataclasses.replace(self, tail=tail)
        chunk = Steps.concatenate(list(tail))
        latest = torch.where(chunk.valid, self.direction[:, None] * chunk.t1, -torch.inf).amax(dim=1).detach()
        if self.ends is not None:
            latest = torch.maximum(latest, self.ends[:, -1])
        ends = latest[:, None] if self.ends is None else torch.cat([self.ends, latest[:, None]], dim=1)
        return dataclasses.replace(self, chunks=self.chunks + (chunk,), tail=(), ends=ends.contiguous())

    def first_chunk(self, lowest: Tensor, rows: Tensor) -> int:
        """Index of the first chunk that a query at key `lowest` `[B]` (times direction) can
        fall in, over the samples in `rows` `[B]`."""
        if self.ends is None:
            return 0
        index = torch.searchsorted(self.ends, lowest.detach()[:, None].contiguous()).squeeze(1)
        return int(torch.where(rows, index, len(self.chunks)).min())

    def window(self, now: Tensor, taus: Tensor, rows: Tensor) -> Window | None:
        """The steps that delayed times of a step starting at key `now` `[B]` can need.

        Args:
            now: `[B]` step start times times the direction.
            taus: `[n]` delays.
            rows: `[B, n]` the (sample, delay) pairs read from the solution (not the history
                function).

        Returns:
            A `Window`, or `None` when no pair reads the solution or nothing is stored.
        """
        active = rows.any(dim=1)
        if not bool(active.any()):
            return None
        lowest = torch.where(rows, now[:, None] - taus[None, :], torch.inf).amin(dim=1)
        parts = list(self.chunks[self.first_chunk(lowest, active) :]) + list(self.tail)
        if not parts:
            return None
        return Window.build(Steps.concatenate(parts), self.direction)


__all__ = ["History", "Record", "Steps", "Window"]
