"""The reversible Heun method for Stratonovich SDEs (Kidger et al., 2021)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ...terms.sde import SDETerm
from ..base import Carry, StepResult
from .base import AbstractStratonovichHeun, brownian_step, linear_coefficients, step_size


@dataclass(frozen=True)
class ReversibleHeun(AbstractStratonovichHeun):
    """Reversible Heun: an algebraically reversible Heun scheme with an auxiliary state $z$.

    $$z_1 = 2 y_0 - z_0 + \\mu_0 h + \\sigma_0 \\Delta W,\\qquad
    \\mu_1, \\sigma_1 = \\mu(t_1, z_1), \\sigma(t_1, z_1),$$
    $$y_1 = y_0 + \\tfrac12(\\mu_0 + \\mu_1) h + \\tfrac12(\\sigma_0 + \\sigma_1)\\Delta W,$$

    where $\\mu_0, \\sigma_0$ were evaluated at $z_0$ by the previous step. The carry is
    `(z, drift, diffusion)`, all at the step's start; `init` sets $z_0 = y_0$ and costs two
    evaluations, each step two more (one drift, one diffusion). Because every step can be
    inverted exactly, gradients can be computed by reconstructing states backwards in time
    (Kidger, Foster, Li & Lyons, "Efficient and Accurate Gradients for Neural SDEs",
    NeurIPS 2021, section 3). Stratonovich SDEs with any noise type; strong order 0.5 in
    general and 1.0 for commutative (diagonal, scalar, additive) noise, as for Heun's method
    (diffrax's SDE solver table lists the same; `tests/core/test_sde.py` measures both), weak
    order 1. Fixed-step only: use `nct.ConstantStep(dt)`.
    """

    def init(self, term: SDETerm, t0: Tensor, y0: Tensor, args: Any) -> tuple[Carry, int]:
        """Carry `(z0, drift(t0, z0), diffusion(t0, z0))` with `z0 = y0`; two evaluations."""
        term.noise.check_state(y0)
        return (y0, term.drift_field(t0, y0, args), term.diffusion(t0, y0, args)), 2

    def step(
        self, term: SDETerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """One step of signed size `h` `[B]` from `(t0 [B], y0 [B, *state])` and the carry."""
        z0, drift0, diffusion0 = carry
        dw = brownian_step(term, t0, h)
        hs = step_size(h, y0)
        z1 = 2 * y0 - z0 + hs * drift0 + term.prod(diffusion0, dw)
        t1 = t0 + h
        drift1 = term.drift_field(t1, z1, args)
        diffusion1 = term.diffusion(t1, z1, args)
        y1 = y0 + 0.5 * (hs * (drift0 + drift1) + term.prod(diffusion0 + diffusion1, dw))
        coeffs = linear_coefficients(y0, y1, dense)
        return StepResult(y1=y1, error=None, carry=(z1, drift1, diffusion1), evals=2, coeffs=coeffs)
