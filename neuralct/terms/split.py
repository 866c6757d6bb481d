"""An ODE whose field is split into a non-stiff part and a stiff part, for IMEX methods."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .._checks import describe
from .base import AbstractDriftTerm, merge_jump_times


class SplitTerm(AbstractDriftTerm):
    """The ODE $dy/dt = f(t, y) + g(t, y)$ with $f$ non-stiff and $g$ stiff.

    An implicit-explicit (IMEX) method such as [`KenCarp4`][neuralct.KenCarp4] treats `explicit`
    ($f$) explicitly and solves only `implicit` ($g$) by Newton's method, so the Jacobian it
    factorises is that of $g$ alone. Every other ODE solver integrates the sum, which makes comparing
    an IMEX solve with a fully explicit or fully implicit one a one-argument change.

    Args:
        explicit: the non-stiff part $f$, an `ODETerm` or another `AbstractDriftTerm`.
        implicit: the stiff part $g$, likewise; a `jacobian(t, y, args)` method on it (returning
            `[B, N, N]`) is used instead of automatic differentiation.

    Raises:
        TypeError: a part is not a drift term.

    Example:
        >>> import torch, neuralct as nct
        >>> term = nct.SplitTerm(
        ...     explicit=nct.ODETerm(lambda t, y, args: torch.sin(t)[:, None] * torch.ones_like(y)),
        ...     implicit=nct.ODETerm(lambda t, y, args: -1000.0 * y),
        ... )
        >>> sol = nct.solve(term, torch.ones(2, 1), torch.linspace(0, 1, 5), solver=nct.KenCarp4())
    """

    def __init__(self, explicit: AbstractDriftTerm, implicit: AbstractDriftTerm):
        super().__init__()
        for name, part in (("explicit", explicit), ("implicit", implicit)):
            if not isinstance(part, AbstractDriftTerm):
                raise TypeError(f"`{name}` must be an ODETerm or another AbstractDriftTerm; got {describe(part)}")
        self.explicit = explicit
        self.implicit = implicit

    def vector_field(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        """$f(t, y) + g(t, y)$: `t` `[B]`, `y` `[B, *state]` -> `[B, *state]`."""
        return self.explicit.vector_field(t, y, args) + self.implicit.vector_field(t, y, args)

    def jump_times(self, ts: Tensor) -> Tensor | None:
        """The union of both parts' jump times (see `AbstractTerm.jump_times`)."""
        return merge_jump_times(ts, self.explicit.jump_times(ts), self.implicit.jump_times(ts))
