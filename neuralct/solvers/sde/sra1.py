"""Rößler's SRA1: strong order 1.5 for SDEs with additive noise, with an embedded error estimate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

from torch import Tensor

from ...errors import IncompatibleTermError
from ...paths.brownian import LevyArea
from ...terms.base import AbstractTerm
from ...terms.noise import NoiseType, SDEType
from ...terms.sde import SDETerm
from ..base import Carry, StepResult
from .base import AbstractSDESolver, brownian_step_and_area, linear_coefficients, step_size


@dataclass(frozen=True)
class SRA1(AbstractSDESolver):
    """SRA1, the two-stage stochastic Runge-Kutta method of Rößler for additive noise.

    For $dy = \\mu(t, y)\\,dt + \\sigma(t)\\,dW$, with $\\Delta W$ and the space-time Lévy
    area $H$ of the step (so that $J = \\frac1h\\int_{t_0}^{t_1}(W_s - W_{t_0})\\,ds =
    \\tfrac12\\Delta W + H$ stands for Rößler's $I_{(1,0)}/h$), $\\mu_1 = \\mu(t_0, y_0)$,
    $\\sigma_0 = \\sigma(t_0)$, $\\sigma_1 = \\sigma(t_0 + h)$:

    $$z = y_0 + \\tfrac34 \\mu_1 h + \\tfrac32 \\sigma_1 J,\\qquad \\mu_2 = \\mu(t_0 + \\tfrac34 h, z),$$
    $$y_1 = y_0 + (\\tfrac13 \\mu_1 + \\tfrac23 \\mu_2) h + \\sigma_1 \\Delta W + (\\sigma_0 - \\sigma_1) J$$

    (Rößler, "Runge-Kutta methods for the strong approximation of solutions of stochastic
    differential equations", SIAM J. Numer. Anal. 48, 2010, section 6: $c^{(0)} = (0, \\tfrac34)$,
    $c^{(1)} = (1, 0)$, $A^{(0)}_{21} = \\tfrac34$, $B^{(0)}_{21} = \\tfrac32$, $\\alpha = (\\tfrac13,
    \\tfrac23)$, $\\beta^{(1)} = (1, 0)$, $\\beta^{(2)} = (-1, 1)$; diffrax's `SRA1` is the same
    tableau for time-independent $\\sigma$). Strong order 1.5, weak order 2; four evaluations
    per step (two drifts, two diffusions).

    The embedded method is Euler-Maruyama, $\\hat y_1 = y_0 + \\mu_1 h + \\sigma_0 \\Delta W$, of
    strong order 1 for additive noise, so the error estimate $y_1 - \\hat y_1$ is of size
    $h^{3/2}$ and `error_order = 0.5`; the step taken is SRA1's (local extrapolation).
    With additive noise the Itô and Stratonovich SDEs coincide, so either `SDEType` works.
    The Brownian motion must carry the space-time Lévy area:
    `nct.BrownianPath(..., levy_area=nct.LevyArea.SPACE_TIME)`, and `tol=...` for adaptive
    steps.
    """

    order: ClassVar[float] = 1.5
    weak_order: ClassVar[float] = 2.0
    error_order: ClassVar[float | None] = 0.5  # an SDE error estimate scales as h^1.5
    noise_types: ClassVar[frozenset[NoiseType]] = frozenset({NoiseType.ADDITIVE})
    sde_types: ClassVar[frozenset[SDEType]] = frozenset(SDEType)

    def check_term(self, term: AbstractTerm) -> None:
        """Raise `IncompatibleTermError` unless `term` is an `SDETerm` with additive noise whose
        Brownian motion gives the space-time Lévy area (the message lists the solvers that can
        take the term otherwise)."""
        super().check_term(term)
        brownian = cast(SDETerm, term).noise.brownian
        level = getattr(brownian, "levy_area", LevyArea.NONE)
        if level == LevyArea.NONE or not callable(getattr(brownian, "increment_and_area", None)):
            raise IncompatibleTermError(
                f"solver SRA1 needs the space-time Levy area of the Brownian motion; got a {type(brownian).__name__} "
                f"with levy_area={level}: build nct.BrownianPath(..., levy_area=nct.LevyArea.SPACE_TIME)"
            )

    def step(
        self, term: SDETerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """One step of signed size `h` `[B]` from `(t0 [B], y0 [B, D])`."""
        dw, area = brownian_step_and_area(term, t0, h)
        j = 0.5 * dw + area
        hs = step_size(h, y0)
        t1 = t0 + h
        drift1 = term.drift_field(t0, y0, args)
        sigma0 = term.diffusion(t0, y0, args)
        sigma1 = term.diffusion(t1, y0, args)
        stage = y0 + 0.75 * hs * drift1 + 1.5 * term.prod(sigma1, j)
        drift2 = term.drift_field(t0 + 0.75 * h, stage, args)
        y1 = y0 + hs * (drift1 + 2 * drift2) / 3 + term.prod(sigma1, dw) + term.prod(sigma0 - sigma1, j)
        euler = y0 + hs * drift1 + term.prod(sigma0, dw)
        return StepResult(y1=y1, error=y1 - euler, carry=(), evals=4, coeffs=linear_coefficients(y0, y1, dense))
