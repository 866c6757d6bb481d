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

    `invert` undoes a step (Kidger et al., 2021, algorithm 2), which is what
    `nct.ReversibleAdjoint()` runs backwards to differentiate a solve in memory flat in the
    number of steps.
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

    def invert(
        self, term: SDETerm, t0: Tensor, y1: Tensor, h: Tensor, carry1: Carry, args: Any
    ) -> tuple[Tensor, Carry]:
        """The state and carry at `t0` `[B]` from those after a step of size `h` `[B]` from it.

        With $\\mu_1, \\sigma_1$ the drift and diffusion at $z_1$ (in the carry),
        $z_0 = 2 y_1 - z_1 - \\mu_1 h - \\sigma_1 \\Delta W$, then $\\mu_0, \\sigma_0$ at $(t_0, z_0)$
        and $y_0 = y_1 - \\tfrac12(\\mu_0 + \\mu_1) h - \\tfrac12(\\sigma_0 + \\sigma_1)\\Delta W$: the
        step's own formulas solved for their inputs, exact up to rounding, at two evaluations.
        $\\Delta W$ is queried over the step's interval again, so the Brownian motion must
        repeat it (`BrownianPath`, `BrownianGrid`).

        Args:
            term: the `SDETerm` the step integrated.
            t0: `[B]` the step's start times.
            y1: `[B, *state]` the state after the step.
            h: `[B]` the signed step sizes.
            carry1: `(z1, drift1, diffusion1)` after the step.
            args: passed to the vector fields.

        Returns:
            `(y0, (z0, drift0, diffusion0))` at `t0`.
        """
        z1, drift1, diffusion1 = carry1
        dw = brownian_step(term, t0, h)
        hs = step_size(h, y1)
        z0 = 2 * y1 - z1 - hs * drift1 - term.prod(diffusion1, dw)
        drift0 = term.drift_field(t0, z0, args)
        diffusion0 = term.diffusion(t0, z0, args)
        y0 = y1 - 0.5 * (hs * (drift0 + drift1) + term.prod(diffusion0 + diffusion1, dw))
        return y0, (z0, drift0, diffusion0)
