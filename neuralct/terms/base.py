"""Abstract terms: the vector field of a differential equation together with its control."""

from __future__ import annotations

import abc
from typing import Any

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
