"""The fused semi-implicit solver of liquid time-constant (LTC) networks.

An LTC neuron obeys $C_m \\dot v = N(v, I) - D(v, I)\\, v$, where $D > 0$ is the total
conductance (leak plus synapses) and $N$ the conductance-weighted sum of the reversal potentials
(see `neuralct.models.ltc.LTCTerm`). The fused step treats the linear decay $-D v$ implicitly and
the conductances explicitly: with $\\Delta = h / L$ and $c = C_m / \\Delta$, each of the $L$
unfolds of a step of size $h$ is

$$v \\leftarrow \\frac{c\\, v + N(v, I)}{c + D(v, I) + \\varepsilon},$$

the input $I$ held at its value at the step's midpoint. For $h > 0$ every conductance is
non-negative, so the new $v$ is a convex combination of the old $v$, the leak potential and the
reversal potentials: the state never leaves their hull, however stiff the equation or large the
step, where explicit methods diverge.

Reference: Hasani, Lechner, Amini, Rus & Grosu, "Liquid Time-Constant Networks", AAAI 2021
(Eq. 3 and Algorithm 1); the per-step elapsed time follows `ncps.torch.LTCCell`
(Lechner & Hasani, `mlech26l/ncps`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..._checks import check_choice, check_int, check_number
from ...solvers.base import AbstractStepMapSolver, Carry, StepResult
from ...solvers.rk.explicit import broadcast_step, hermite_coefficients
from ...terms.base import AbstractDriftTerm

ITERATES = ("running", "initial")


class AbstractLTCTerm(AbstractDriftTerm):
    """A drift term $C_m \\dot v = N(v, I(t)) - D(v, I(t))\\, v$ split the way `LTCFused` needs it.

    $N$ and $D$ are each the sum of a part that depends on the input only (leak and sensory
    synapses, fixed over a step with held input) and a part that depends on the state
    (recurrent synapses, re-evaluated at every unfold).
    """

    @property
    @abc.abstractmethod
    def capacitance(self) -> Tensor:
        """`[N]` membrane capacitances $C_m > 0$."""

    @abc.abstractmethod
    def input(self, t: Tensor) -> Tensor:
        """`[B, S]` the (mapped) input $I(t)$ at times `t` `[B]`."""

    @abc.abstractmethod
    def input_sums(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """`([B, N], [B, N])` the state-independent parts of $(N, D)$ for `inputs` `[B, S]`."""

    @abc.abstractmethod
    def state_sums(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """`([B, N], [B, N])` the state-dependent parts of $(N, D)$ at `v` `[B, N]`."""

    def state_sums_for_step(self) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
        """`state_sums` for the unfolds of one step. A term whose sums transform parameters
        (e.g. a softplus on the weights) overrides it to do that once per step, not once per
        unfold; by default it is `state_sums` itself."""
        return self.state_sums

    def drift(self, v: Tensor, inputs: Tensor) -> Tensor:
        """$\\dot v = (N - D v) / C_m$ for a given input: `v` `[B, N]`, `inputs` `[B, S]` -> `[B, N]`."""
        input_num, input_den = self.input_sums(inputs)
        state_num, state_den = self.state_sums(v)
        return (input_num + state_num - (input_den + state_den) * v) / self.capacitance

    def vector_field(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        """$\\dot v$ at `t` `[B]`, `y` `[B, N]` with the input read from the path at `t`."""
        return self.drift(y, self.input(t))


@dataclass(frozen=True)
class LTCFused(AbstractStepMapSolver):
    """The LTC fused solver: `unfolds` semi-implicit sub-steps per step, order 1, fixed step.

    One step of size $h$ from $v_0$ runs $L$ = `unfolds` updates
    $v \\leftarrow (c v + N(v, I)) / (c + D(v, I) + \\varepsilon)$ with $c = C_m L / h$ and $I$
    the input at the step's midpoint (with a piecewise-constant input whose knots the loop lands
    on, the value of the gap $(t_{k-1}, t_k]$, i.e. $x_k$). Each unfold feeds the running iterate
    back into the conductances (a fixed-point sweep), as both reference codes do. With the
    `KnotToKnot()` controller every observation gap is one step, which is exactly
    `ncps.torch.LTCCell(ode_unfolds=L)` called with the gap as its elapsed time.

    With `iterate="initial"` the step is Algorithm 1 of the LTC paper *as printed*, which passes
    $x(t)$ instead of the running iterate into the `FusedStep` of every unfold: the $L$ unfolds
    then all compute the same single fused step of size $h$, $v_1 = (c v_0 + N(v_0)) /
    (c + D(v_0) + \\varepsilon)$ with $c = C_m / h$, whatever `unfolds` is (so it equals
    `unfolds=1`). It is offered only to reproduce the paper's text; the codes use the running
    iterate, the default.

    Fixed-step (no error estimate): use it with `KnotToKnot()` or `ConstantStep(dt)`. For $h > 0$
    each update is a convex combination of $v$, the leak potential and the reversal potentials;
    a backward step ($h < 0$) is the same formula but loses that property. A zero step (a
    finished sample) returns $v_0$. Dense output is the cubic Hermite interpolant with the slopes
    of the held-input equation at both ends (two more evaluations).

    Args:
        unfolds: sub-steps $L \\ge 1$ per step (ncps: `ode_unfolds=6`).
        epsilon: $\\varepsilon \\ge 0$ added to the denominator against division by zero (ncps: 1e-8).
        iterate: `"running"` (default, the reference codes) or `"initial"` (Algorithm 1 as printed).

    Raises:
        InvalidInputError: `unfolds` not a positive int, `epsilon` negative or not a number,
            `iterate` not one of `"running"`, `"initial"`.

    Reference: Hasani et al., "Liquid Time-Constant Networks", AAAI 2021 (Eq. 3, Algorithm 1);
    `ncps.torch.LTCCell` (`mlech26l/ncps`).
    """

    unfolds: int = 6
    epsilon: float = 1e-8
    iterate: str = "running"

    order: ClassVar[float] = 1
    term_types: ClassVar[tuple[type, ...]] = (AbstractLTCTerm,)

    def __post_init__(self) -> None:
        check_int("unfolds", self.unfolds)
        check_number("epsilon", self.epsilon, 0.0)
        check_choice("iterate", self.iterate, ITERATES)

    def step(
        self, term: AbstractLTCTerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """Advance `y0` `[B, N]` from `t0` `[B]` by the signed steps `h` `[B]`; costs one
        evaluation of the state-dependent sums per unfold."""
        inputs = term.input(t0 + h / 2).to(y0.dtype)
        input_num, input_den = term.input_sums(inputs)
        unfolds = self.unfolds if self.iterate == "running" else 1
        still = h == 0
        # A finished sample's zero step would divide by zero (and poison gradients through where).
        safe = torch.where(still, torch.ones_like(h), h).to(y0.dtype)
        c = term.capacitance * (unfolds / safe).unsqueeze(-1)
        v = y0
        state_sums = term.state_sums_for_step()
        for _ in range(unfolds):
            state_num, state_den = state_sums(v)
            v = (c * v + input_num + state_num) / (c + input_den + state_den + self.epsilon)
        y1 = torch.where(still.unsqueeze(-1), y0, v)
        coeffs = None
        if dense:
            hs = broadcast_step(h, y0)
            coeffs = hermite_coefficients(y0, y1, term.drift(y0, inputs), term.drift(y1, inputs), hs)
        return StepResult(y1=y1, error=None, carry=(), evals=unfolds + 2 * int(dense), coeffs=coeffs)


__all__ = ["AbstractLTCTerm", "LTCFused"]
