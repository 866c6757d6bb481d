"""The controlled differential equation term $dz = f(t, z)\\,dX(t)$."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from .._checks import describe
from .._validate import check_field_output
from .base import AbstractDriftTerm, StageField, path_jump_times


class PerSamplePath(Protocol):
    """A control path evaluated at per-sample times.

    `evaluate(t)` and `derivative(t)` take `[B]` times and return `[B, C]`.
    A path may also provide `jump_times() -> [B, J]` for the knots where it is not smooth,
    and declare `batched_times = True` when `derivative` also takes `[B, K]` times (returning
    `[B, K, C]`): the solvers then look up the control at all of a step's stages at once.
    """

    def evaluate(self, t: Tensor) -> Tensor: ...

    def derivative(self, t: Tensor) -> Tensor: ...


class ControlTerm(AbstractDriftTerm):
    """CDE term $dz = f(t, z)\\,dX(t)$, solved as the ODE $dz/dt = f(t, z)\\,\\dot X(t)$.

    This is the formulation of neural CDEs (Kidger et al., "Neural Controlled Differential
    Equations for Irregular Time Series", NeurIPS 2020) and of `torchcde.cdeint`.

    Args:
        f: callable `f(t, z, args)` with `t` `[B]`, `z` `[B, *state]`, returning the matrix
            `[B, *state, C]`.
        path: the control $X$, with per-sample `evaluate(t)` / `derivative(t)` returning `[B, C]`.
    """

    def __init__(self, f: Callable[[Tensor, Tensor, Any], Tensor], path: PerSamplePath):
        super().__init__()
        if not callable(f):
            raise TypeError(f"`f` must be callable as f(t, z, args); got {describe(f)}")
        if not (callable(getattr(path, "evaluate", None)) and callable(getattr(path, "derivative", None))):
            raise TypeError(f"`path` must have evaluate(t) and derivative(t) methods; got {describe(path)}")
        self.f = f
        self.path = path

    def vector_field(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        """$f(t, z)\\,\\dot X(t)$: `t` `[B]`, `z` `[B, *state]` -> `[B, *state]`."""
        return self._apply(t, y, self.path.derivative(t), args)

    def stage_field(self, times: Sequence[Tensor], args: Any) -> StageField:
        """As `AbstractDriftTerm.stage_field`, with $\\dot X$ at every stage looked up in one
        query when the path takes `[B, K]` times (`batched_times`)."""
        if not getattr(self.path, "batched_times", False):
            return super().stage_field(times, args)
        controls = self.path.derivative(torch.stack(list(times), dim=1))
        return lambda stage, y: self._apply(times[stage], y, controls[:, stage], args)

    def _apply(self, t: Tensor, y: Tensor, control: Tensor, args: Any) -> Tensor:
        """$f(t, z)$ `[B, *state, C]` times the control's derivative `control` `[B, C]`."""
        matrix = check_field_output(self, self.f(t, y, args), y, y.shape + control.shape[-1:])
        if control.dtype != matrix.dtype:
            control = control.to(matrix.dtype)
        # A batched matrix-vector product; cheaper than einsum's permutes, forward and backward.
        flat = matrix.reshape(matrix.shape[0], -1, matrix.shape[-1])
        return torch.bmm(flat, control.unsqueeze(-1)).reshape(y.shape)

    def select_rows(self, index: Tensor) -> ControlTerm | None:
        """The term for the samples `index` `[b]`: the same `f` on the path's rows, when the path
        takes them (`rows(index)`, as the interpolated paths do); else `None`."""
        rows = getattr(self.path, "rows", None)
        return None if rows is None else ControlTerm(self.f, rows(index))

    def jump_times(self, ts: Tensor) -> Tensor | None:
        """The path's knots, when it declares them by a `jump_times()` method
        (see `AbstractTerm.jump_times`)."""
        return path_jump_times(self.path)
