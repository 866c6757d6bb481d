"""Step doubling: an error estimate for the explicit SDE solvers, so that they run adaptively."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..._checks import describe
from ...errors import IncompatibleTermError
from ...terms.base import AbstractTerm
from ...terms.noise import NoiseType, SDEType
from ...terms.sde import SDETerm
from ..base import Carry, StepResult
from .base import (
    AbstractExplicitSDESolver,
    AbstractSDESolver,
    brownian_step,
    can_double,
    doubling_sde_solvers,
    linear_coefficients,
)
from .milstein import Milstein


@dataclass(frozen=True)
class StepDoubling(AbstractSDESolver):
    """An explicit SDE solver made adaptive by step doubling on one Brownian path.

    A step of size $h$ from $(t_0, y_0)$ takes the wrapped method $\\Phi$ once over the whole step
    and twice over its halves, with $t_m = t_0 + h/2$ and the increments $\\Delta W_1 = W(t_m) -
    W(t_0)$, $\\Delta W_2 = W(t_0 + h) - W(t_m)$ read from the Brownian motion (its bridge value at
    $t_m$):

    $$y_c = \\Phi(t_0, y_0, h, \\Delta W_1 + \\Delta W_2), \\qquad
    y_1 = \\Phi(t_m, \\Phi(t_0, y_0, \\tfrac h2, \\Delta W_1), \\tfrac h2, \\Delta W_2),$$

    and returns $y_1$ with the error estimate $y_1 - y_c$: step doubling (Hairer, Nørsett &
    Wanner, "Solving Ordinary Differential Equations I", Springer 1993, section II.4) on a
    Brownian path kept across rejected steps, which variable steps for SDEs need (Gaines &
    Lyons, "Variable step size control in the numerical solution of stochastic differential
    equations", SIAM J. Appl. Math. 57, 1997).

    **No local extrapolation.** For an ODE the leading local errors of $y_c$ and $y_1$ are one
    smooth term $C h^{p+1}$ in the ratio $2^p$, so $y_1 + (y_1 - y_c)/(2^p - 1)$ cancels it. For
    an SDE the leading local error is a multiple stochastic integral ($\\sigma'\\sigma
    \\Delta W_1 \\Delta W_2$ for Euler-Maruyama, terms in $\\Delta W^3$, $h \\Delta W$ for Milstein)
    whose values over $h$ and over the two halves are not in a fixed ratio: the combination
    cancels nothing and adds a multiple of $y_c$'s error (Milstein on Itô GBM, $h = 1/64$: mean
    local error 2.7e-4 extrapolated against 2.1e-4 for the half steps). So the half steps are
    the solution.

    **The estimate's order.** With $p$ the wrapped method's strong order, the whole and the half
    steps differ by the method's local error, of size $h^{p + 1/2}$, so `error_order` $= p - 1/2$
    (the convention of `neuralct.solvers.sde.base`). For `Milstein` the $\\sigma'\\sigma
    \\Delta W^2$ terms agree between the whole and the half steps and the rest is of size
    $h^{3/2}$: `error_order = 0.5`, measured as a log-log slope in
    `tests/core/test_sde_ito_adaptive.py` (1.5).

    **Which methods.** Steps chosen from the Brownian path are not previsible: a method must
    converge on such partitions (Foster & Jelinčič, "On the convergence of adaptive
    approximations for stochastic differential equations", arXiv:2311.14201, 2024). Milstein,
    whose $\\Delta W^2$ term makes it a pathwise scheme, does; Euler-Maruyama, whose
    Itô correction rests on sums of $\\Delta W^2$ approaching the elapsed time, does not (on
    Itô GBM its adaptive error stays at 0.2 from rtol 1e-2 to 1e-4), so `StepDoubling` takes
    explicit methods of strong order at least 1: `Milstein` (Itô or Stratonovich; diagonal,
    scalar or additive noise). General (non-commutative) Itô noise has none yet.

    **Accuracy.** On Itô GBM the error falls as (accepted steps)$^{-0.62}$ between rtol 1e-2 and
    1e-4, where uniform steps give order 0.93: adaptive steps beat as many uniform ones at loose
    tolerances only, and at equal evaluations uniform Milstein is 2 to 14 times more accurate
    (figures in `docs/guide/sde.md`). Presumably the accepted steps are those whose local error
    came out small, so the local errors no longer cancel as on a grid fixed in advance. For
    diagonal noise with a known $\\partial\\sigma/\\partial y$, `StochasticHeun` on the Stratonovich
    form is the better adaptive route (30 times more accurate on GBM at a similar cost).

    **Cost.** The whole step and the first half step share the drift and diffusion at
    $(t_0, y_0)$: Milstein takes 7 evaluations per step (Itô), 10 (Stratonovich) or 4
    (additive noise), against 3, 4 and 2 for one step of its own, and three Brownian queries
    ($W$ at $t_0$, $t_m$, $t_0 + h$). Under `nct.PIDController` the Brownian motion must be a
    `nct.BrownianTree`, so that a rejected step re-reads the same path; with
    `nct.ConstantStep(dt)` the solve equals the wrapped method with steps of `dt / 2`.

    Args:
        solver: the explicit method to wrap, of strong order at least 1 (`Milstein`); its
            order, noise types and SDE types are this solver's.

    Raises:
        IncompatibleTermError: `solver` is not an explicit SDE method of strong order at
            least 1 (Euler-Maruyama, an adaptive or carrying solver, a `StepDoubling`, or not an
            SDE solver).
    """

    solver: AbstractExplicitSDESolver = Milstein()

    def __post_init__(self) -> None:
        if not can_double(self.solver):
            why = ""
            if isinstance(self.solver, AbstractExplicitSDESolver):
                why = f" (order {self.solver.order} on steps chosen from the Brownian path converges to another limit)"
            raise IncompatibleTermError(
                f"`solver` must be an explicit SDE method of strong order >= 1 that StepDoubling can wrap "
                f"({', '.join(doubling_sde_solvers())}); got {describe(self.solver)}{why}"
            )

    @property
    def order(self) -> float:  # pyright: ignore[reportIncompatibleVariableOverride]
        """The wrapped method's strong order for every noise type it accepts."""
        return self.solver.order

    @property
    def weak_order(self) -> float:  # pyright: ignore[reportIncompatibleVariableOverride]
        """The wrapped method's weak order."""
        return self.solver.weak_order

    @property
    def error_order(self) -> float:  # pyright: ignore[reportIncompatibleVariableOverride]
        """`order - 1/2`: the estimate is of size $h^{p + 1/2}$ (see the class docstring)."""
        return self.solver.order - 0.5

    @property
    def noise_types(self) -> frozenset[NoiseType]:  # pyright: ignore[reportIncompatibleVariableOverride]
        """The wrapped method's noise types."""
        return self.solver.noise_types

    @property
    def sde_types(self) -> frozenset[SDEType]:  # pyright: ignore[reportIncompatibleVariableOverride]
        """The wrapped method's SDE types."""
        return self.solver.sde_types

    @property
    def reads_step_end(self) -> bool:
        """`False`: the wrapped method reads the start of each half step only."""
        return False

    def strong_order(self, noise_type: NoiseType) -> float:
        """The wrapped method's strong order for `noise_type`."""
        return self.solver.strong_order(noise_type)

    def check_term(self, term: AbstractTerm) -> None:
        """Raise `IncompatibleTermError` unless the wrapped method can integrate `term` (its message
        names the method and lists the solvers that can)."""
        self.solver.check_term(term)

    def step(
        self, term: SDETerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """The two half steps from `(t0 [B], y0 [B, *state])` by the signed step `h` `[B]`, with the
        whole step's difference from them as the error `[B, *state]`."""
        half = 0.5 * h
        mid_t = t0 + half
        dw1 = brownian_step(term, t0, half)
        dw2 = term.increment(mid_t, t0 + h)
        start = (term.drift_field(t0, y0, args), term.diffusion(t0, y0, args))
        whole, whole_evals = self.solver.advance(term, t0, y0, h, dw1 + dw2, start, args)
        mid, first_evals = self.solver.advance(term, t0, y0, half, dw1, start, args)
        at_mid = (term.drift_field(mid_t, mid, args), term.diffusion(mid_t, mid, args))
        y1, second_evals = self.solver.advance(term, mid_t, mid, half, dw2, at_mid, args)
        evals = 4 + whole_evals + first_evals + second_evals
        return StepResult(y1=y1, error=y1 - whole, carry=(), evals=evals, coeffs=linear_coefficients(y0, y1, dense))
