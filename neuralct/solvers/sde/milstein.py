"""The derivative-free Milstein method for commutative noise (Kloeden & Platen, 1992, section 11.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ...terms.noise import NoiseType, SDEType
from ...terms.sde import SDETerm
from .base import AbstractExplicitSDESolver, step_size


@dataclass(frozen=True)
class Milstein(AbstractExplicitSDESolver):
    """Milstein's method in derivative-free (Runge-Kutta) form, strong order 1.

    The Milstein scheme (Milstein, "Approximate integration of stochastic differential
    equations", Theory Probab. Appl. 19, 1975) adds $\\tfrac12 \\sigma'\\sigma\\,v$ to the
    Euler-Maruyama step, with $v = \\Delta W^2 - |h|$ for Itô and $v = \\Delta W^2$ for
    Stratonovich SDEs. Here $\\sigma'\\sigma$ (the derivative of $\\sigma$ along $\\sigma$) is a
    difference quotient, so `g` needs no autograd; with $s = \\sqrt{|h|}$ and $\\mu, \\sigma$
    at $(t_0, y_0)$:

    - Itô: $y_1 = y_0 + \\mu h + \\sigma \\Delta W + \\frac{\\sigma(\\bar y) - \\sigma(y_0)}{2 s}\\,v$ with
      $\\bar y = y_0 + \\mu h + \\sigma s$ (Kloeden & Platen, "Numerical Solution of Stochastic
      Differential Equations", Springer 1992, eq. 11.1.5); three evaluations per step.
    - Stratonovich: the central quotient $\\frac{\\sigma(y_0 + \\sigma s) - \\sigma(y_0 - \\sigma s)}{4 s}\\,v$.
      The one-sided quotient errs by $O(s)$ and, as $E[v] = |h| \\neq 0$, that error
      accumulates to strong order 0.5; the central one errs by $O(h)$ and keeps order 1.
      Four evaluations per step.

    Handles diagonal and scalar noise (both commutative, so no Lévy area is needed) and
    additive noise, where the correction vanishes and the step is Euler-Maruyama's (two
    evaluations). Weak order 1. Fixed-step with `nct.ConstantStep(dt)`; adaptive as
    `nct.StepDoubling(nct.Milstein())`.
    """

    order: ClassVar[float] = 1.0
    weak_order: ClassVar[float] = 1.0
    noise_types: ClassVar[frozenset[NoiseType]] = frozenset({NoiseType.DIAGONAL, NoiseType.SCALAR, NoiseType.ADDITIVE})
    sde_types: ClassVar[frozenset[SDEType]] = frozenset(SDEType)

    def advance(
        self, term: SDETerm, t0: Tensor, y0: Tensor, h: Tensor, dw: Tensor, start: tuple[Tensor, Tensor], args: Any
    ) -> tuple[Tensor, int]:
        """The Milstein step `[B, *state]` from `start = (drift, diffusion)` at `(t0, y0)`, with the
        evaluations of the difference quotient (1 Itô, 2 Stratonovich, 0 additive)."""
        hs = step_size(h, y0)
        drift, diffusion = start
        euler = y0 + hs * drift
        y1 = euler + term.prod(diffusion, dw)
        evals = 0
        if term.noise_type != NoiseType.ADDITIVE:
            # Samples with h = 0 (finished ones) divide by 1 instead of 0, so no NaN reaches autograd.
            root = torch.where(hs == 0, torch.ones_like(hs), hs.abs().sqrt())
            column = diffusion if term.noise_type == NoiseType.DIAGONAL else diffusion[..., 0]
            if term.sde_type == SDEType.ITO:
                ahead, behind, v = euler + column * root, None, dw**2 - step_size(h, dw).abs()
            else:
                ahead, behind, v = y0 + column * root, y0 - column * root, dw**2
            ahead_g = term.diffusion(t0, ahead, args)
            behind_g = diffusion if behind is None else term.diffusion(t0, behind, args)
            scale = 2 * root if behind is None else 4 * root
            y1 = y1 + term.prod(ahead_g - behind_g, v) / scale
            evals = 1 if behind is None else 2
        return y1, evals
