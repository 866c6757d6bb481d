"""Abstract terms: the vector field of a differential equation together with its control."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn


class AbstractTerm(nn.Module, abc.ABC):
    """Base class of every term.

    A term is an `nn.Module` so that the parameters of its vector field are found by
    optimizers, `.to(device)` and the adjoint.
    """

    def jump_times(self, ts: Tensor) -> Tensor | None:
        """Times where the term's right-hand side is not smooth, such as the knots of a
        linearly interpolated control or the breakpoints $t_0 + k\\tau$ of a delay equation;
        the step loop lands exactly on them instead of stepping across them.

        Args:
            ts: `[B, K]` the solve's save times (rows increasing or decreasing).

        Returns:
            `[J]` or `[B, J]` times sorted in the direction of `ts`, or `None` when smooth.
        """
        return None

    def select_rows(self, index: Tensor) -> AbstractTerm | None:
        """The term for the samples `index` `[b]` of its batch, evaluated on `[b, *state]` states
        (`solve(..., compact=True)` moves the running samples into a smaller batch), or `None`
        when the term holds per-sample data it cannot take row by row: it then keeps the whole
        batch. Default `None`."""
        return None


class AbstractDriftTerm(AbstractTerm):
    """A term whose equation is an ODE $dy/dt = F(t, y)$ once its control is resolved.

    ODE, CDE (through the control's derivative) and linear terms are drift terms, so every
    ODE solver integrates them.
    """

    @abc.abstractmethod
    def vector_field(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        """Evaluate $F(t, y)$.

        Args:
            t: `[B]` time of each sample.
            y: `[B, *state]` state.
            args: the `args` passed to `solve`.

        Returns:
            `[B, *state]` time derivative of the state.
        """

    def stage_field(self, times: Sequence[Tensor], args: Any) -> StageField:
        """The vector field on one step, by stage: `field(i, y)` is `vector_field(times[i], y,
        args)`, with `times` the step's stage times (each `[B]`, see `stage_times`).

        Explicit Runge-Kutta steps evaluate their stages through it. A term whose field has a
        part that depends on time only overrides it to compute that part at every stage in
        one batch when the step starts (`ControlTerm`: the control's derivative).
        """
        return lambda stage, y: self.vector_field(times[stage], y, args)


# `(stage index i, y [B, *state]) -> [B, *state]`: a drift term on one step, by stage (see
# `AbstractDriftTerm.stage_field`).
StageField = Callable[[int, Tensor], Tensor]


def stage_times(t0: Tensor, h: Tensor, nodes: tuple[float, ...]) -> list[Tensor]:
    """The times `t0 + nodes[i] * h` (each `[B]`) of a step's stages, formed once per step for
    the solver and for whatever the term looks up ahead of the stages."""
    return [t0 if c == 0 else torch.add(t0, h, alpha=c) for c in nodes]


def path_jump_times(path: object) -> Tensor | None:
    """`[J]` or `[B, J]` knots a path declares by a `jump_times()` method, else `None`."""
    jumps = getattr(path, "jump_times", None)
    return jumps() if callable(jumps) else None


def merge_jump_times(ts: Tensor, *parts: Tensor | None) -> Tensor | None:
    """`[B, J]` union of several terms' jump times, sorted along each row of `ts` `[B, K]`.

    Each part is `[J_i]`, `[B, J_i]` or `None`; rows may be padded with $\\pm\\infty$ in the
    solve's direction. Times that coincide to rounding are kept once (the loop cannot step
    between them).
    """
    given = [p.to(ts.dtype).expand(ts.shape[0], -1) if p.ndim == 1 else p.to(ts.dtype) for p in parts if p is not None]
    if not given:
        return None
    jumps = torch.cat(given, dim=1)
    direction = torch.where(ts[:, -1:] < ts[:, :1], -1.0, 1.0).to(ts.dtype)
    key, order = torch.sort((direction * jumps).detach(), dim=1, stable=True)
    jumps = jumps.gather(1, order)
    tolerance = 64 * torch.finfo(ts.dtype).eps * ts.detach().abs().amax(dim=1, keepdim=True).clamp_min(1.0)
    repeated = torch.zeros_like(key, dtype=torch.bool)
    repeated[:, 1:] = key.diff(dim=1) <= tolerance
    jumps = torch.where(repeated, direction * torch.inf, jumps)
    return jumps.gather(1, torch.argsort(torch.where(repeated, torch.inf, key), dim=1, stable=True))
