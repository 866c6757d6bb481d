"""The ordinary differential equation term $dy = f(t, y)\\,dt$."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from .._checks import describe
from .._validate import check_field_output
from .base import AbstractDriftTerm, path_jump_times


class ODETerm(AbstractDriftTerm):
    """ODE term $dy/dt = f(t, y, \\text{args})$.

    Args:
        f: callable `f(t, y, args)` with `t` `[B]` and `y` `[B, *state]`, returning
            `[B, *state]`. An `nn.Module` is registered as a submodule so its parameters
            belong to the term (needed by `Backsolve`, which finds parameters there).
        inputs: the input path `f` reads, if any (e.g. `PiecewiseConstantPath`). Its
            `jump_times()` become the term's, so the loop lands on every knot and a step never
            straddles a jump of the input.

    Example:
        >>> import torch, neuralct as nct
        >>> term = nct.ODETerm(lambda t, y, args: -y)
        >>> sol = nct.solve(term, torch.ones(2, 1), torch.linspace(0, 1, 5))
    """

    def __init__(self, f: Callable[[Tensor, Tensor, Any], Tensor], *, inputs: object = None):
        super().__init__()
        if not callable(f):
            raise TypeError(f"`f` must be callable as f(t, y, args); got {describe(f)}")
        self.f = f
        self.inputs = inputs

    def vector_field(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        """$f(t, y, \\text{args})$: `t` `[B]`, `y` `[B, *state]` -> `[B, *state]`.

        Raises:
            IncompatibleTermError: `f` returned something other than a tensor with the shape,
                dtype and device of `y`.
        """
        return check_field_output(self, self.f(t, y, args), y)

    def extra_repr(self) -> str:
        return "" if isinstance(self.f, nn.Module) else f"f={getattr(self.f, '__name__', repr(self.f))}"

    def select_rows(self, index: Tensor) -> ODETerm | None:
        """The same term for the samples `index` `[b]`: `f` holds no per-sample data (such data goes
        through `args`, taken row by row); `None` when `f` reads an `inputs` path."""
        return self if self.inputs is None else None

    def jump_times(self, ts: Tensor) -> Tensor | None:
        """The knots of `inputs`, when it declares them (see `AbstractTerm.jump_times`)."""
        return path_jump_times(self.inputs)
