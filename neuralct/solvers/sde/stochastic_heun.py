"""The stochastic Heun method for Stratonovich SDEs (Rümelin, 1982)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from ...terms.sde import SDETerm
from ..base import Carry, StepResult
from .base import AbstractStratonovichHeun, brownian_step, linear_coefficients, step_size


@dataclass(frozen=True)
class StochasticHeun(AbstractStratonovichHeun):
    """Stochastic Heun (the trapezoidal predictor-corrector) for Stratonovich SDEs.

    $$\\bar y = y_0 + \\mu_0 h + \\sigma_0 \\Delta W, \\qquad
    y_1 = y_0 + \\tfrac12(\\mu_0 + \\bar\\mu) h + \\tfrac12(\\sigma_0 + \\bar\\sigma) \\Delta W,$$

    with $\\mu_0, \\sigma_0$ at $(t_0, y_0)$ and $\\bar\\mu, \\bar\\sigma$ at $(t_0 + h, \\bar y)$.
    Any noise type; strong order 0.5 in general and 1.0 for commutative (diagonal, scalar,
    additive) noise, weak order 1 (Rümelin, "Numerical treatment of stochastic differential
    equations", SIAM J. Numer. Anal. 19, 1982; Burrage, Burrage & Tian, "Numerical methods
    for strong solutions of stochastic differential equations: an overview", Proc. R. Soc.
    Lond. A 460, 2004). Four evaluations per step (two drifts, two diffusions).

    Adaptive: the predictor $\\bar y$ is an Euler step, so $y_1 - \\bar y =
    \\tfrac12(\\bar\\mu - \\mu_0) h + \\tfrac12(\\bar\\sigma - \\sigma_0)\\Delta W$ is a free error
    estimate (diffrax's `Heun` uses the same embedded pair). It is of size $h$ for
    multiplicative noise ($\\tfrac12\\sigma'\\sigma\\,\\Delta W^2$) and $h^{3/2}$ for additive noise,
    so `error_order = 0` (the controller's exponent is 1). Under `nct.PIDController` the
    Brownian motion must be a dyadic tree, `nct.BrownianPath(..., tol=...)`.
    """

    error_order: ClassVar[int | None] = 0

    def step(
        self, term: SDETerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """One step of signed size `h` `[B]` from `(t0 [B], y0 [B, *state])`."""
        dw = brownian_step(term, t0, h)
        hs = step_size(h, y0)
        drift0 = term.drift_field(t0, y0, args)
        diffusion0 = term.diffusion(t0, y0, args)
        predictor = y0 + hs * drift0 + term.prod(diffusion0, dw)
        t1 = t0 + h
        drift1 = term.drift_field(t1, predictor, args)
        diffusion1 = term.diffusion(t1, predictor, args)
        y1 = y0 + 0.5 * (hs * (drift0 + drift1) + term.prod(diffusion0 + diffusion1, dw))
        return StepResult(y1=y1, error=y1 - predictor, carry=(), evals=4, coeffs=linear_coefficients(y0, y1, dense))
