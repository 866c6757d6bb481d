"""Symplectic (semi-implicit) Euler for separable Hamiltonian terms, order 1.

For $H = H_p(p) + H_q(q)$ with $\\dot p = \\partial H/\\partial q$ and $\\dot q = -\\partial H/\\partial p$
(the sign convention of `neuralct.models.hamiltonian`), one step of size $h$ from $t_0$ is

$$q_1 = q_0 + h\\, \\dot q(p_0), \\qquad p_1 = p_0 + h\\, \\dot p(q_1):$$

$q$ is updated with the old $p$, then $p$ with the new $q$, the order of the H2-DNN
(Galimberti et al., and `H2.forward` in `DecodEPFL/HamiltonianNet`). Each half-update is a
shear $x \\mapsto x + h \\nabla G$ of one half by the gradient of a function of the other half,
whose Jacobian is symplectic, so the step's Jacobian $M$ satisfies $M^\\top J M = J$ exactly:
volume is kept, singular values come in pairs $(\\sigma, 1/\\sigma)$ (so $\\|M\\|_2 \\ge 1$), and with
a time-invariant $H$ the energy error stays bounded over long runs instead of drifting. Both
half-updates are explicit because $H$ is separable.

The parameters are read at the step's midpoint $t_0 + h/2$: the loop lands on the term's layer
boundaries (its `jump_times`), so every step lies inside one layer and reads that layer's
parameters, whichever side of a boundary rounding puts $t_0$.

Reference: Hairer, Lubich & Wanner, "Geometric Numerical Integration", 2nd ed., Springer 2006,
Theorem VI.3.3; Galimberti, Furieri, Xu & Ferrari-Trecate, "Hamiltonian Deep Neural Networks
Guaranteeing Non-vanishing Gradients by Design", arXiv:2105.13205.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ...solvers.base import AbstractStepMapSolver, Carry, StepResult
from ...solvers.rk.explicit import broadcast_step, hermite_coefficients
from .terms import SeparableHamiltonianTerm


@dataclass(frozen=True)
class SymplecticEuler(AbstractStepMapSolver):
    """Symplectic (semi-implicit) Euler for `SeparableHamiltonianTerm`, order 1 (Galimberti et al., 2021).

    One step: $q_1 = q_0 + h\\, \\dot q(t_m, p_0)$, then $p_1 = p_0 + h\\, \\dot p(t_m, q_1)$, with the
    parameters read at the midpoint $t_m = t_0 + h/2$. Both updates are explicit; one step costs
    one vector-field evaluation (two half-evaluations). With `ConstantStep(h)` and $h = T/L$ it is
    exactly the H2-DNN layer map.

    Fixed-step only (no error estimate): use it with `nct.ConstantStep(dt)`. A backward step
    ($h < 0$) uses the same formula (it is symplectic too, though not the inverse of the forward
    step); a zero step (a finished sample) returns $y_0$. Dense output is the cubic Hermite
    interpolant with the slopes at both ends (two more evaluations).

    Reference: Hairer, Lubich & Wanner, "Geometric Numerical Integration", 2006, Theorem VI.3.3;
    Galimberti et al., arXiv:2105.13205 (the H2-DNN).
    """

    order: ClassVar[float] = 1
    error_order: ClassVar[int | None] = None
    term_types: ClassVar[tuple[type, ...]] = (SeparableHamiltonianTerm,)

    def step(
        self, term: SeparableHamiltonianTerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """Advance `y0` `[B, 2n]` from `t0` `[B]` by the signed steps `h` `[B]`.

        Returns:
            `StepResult` with `y1` `[B, 2n]`, no error estimate, and Hermite coefficients
            `[B, 3, 2n]` when `dense`.

        Raises:
            InvalidInputError: `y0` not `[B, 2n]` for the term's $n$.
        """
        t_mid = t0 + h / 2
        hs = broadcast_step(h, y0)
        p0, q0 = term.split(y0)
        q1 = q0 + hs * term.q_rate(t_mid, p0, q0)
        p1 = p0 + hs * term.p_rate(t_mid, p0, q1)
        y1 = torch.cat([p1, q1], dim=1)
        coeffs = None
        if dense:
            f0 = term.vector_field(t_mid, y0, args)
            f1 = term.vector_field(t_mid, y1, args)
            coeffs = hermite_coefficients(y0, y1, f0, f1, hs)
        return StepResult(y1=y1, error=None, carry=(), evals=1 + 2 * int(dense), coeffs=coeffs)


__all__ = ["SymplecticEuler"]
