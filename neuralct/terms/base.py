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

    def jump_times(self) -> Tensor | None:
        """`[B, J]` times (each row increasing) where the term's right-hand side is not
        smooth, such as the knots of a linearly interpolated control; solvers step onto
        them instead of across them. `None` when the term is smooth."""
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
