"""The Euler-Maruyama method for Itô SDEs (Maruyama, 1955)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from ...terms.noise import NoiseType, SDEType
from ...terms.sde import SDETerm
from .base import ALL_NOISE, AbstractExplicitSDESolver, step_size


@dataclass(frozen=True)
class EulerMaruyama(AbstractExplicitSDESolver):
    """Euler-Maruyama: $y_1 = y_0 + \\mu(t_0, y_0)\\,h + \\sigma(t_0, y_0)\\,\\Delta W$.

    Itô SDEs with any noise type; strong order 0.5 (1.0 for additive noise), weak order 1
    (Kloeden & Platen, "Numerical Solution of Stochastic Differential Equations", Springer
    1992, section 10.2; Maruyama, "Continuous Markov processes and stochastic equations",
    Rend. Circ. Mat. Palermo 4, 1955). Two evaluations per step (drift + diffusion).
    Fixed-step only, with `nct.ConstantStep(dt)`: on steps chosen from the Brownian path it
    converges to another limit, so `nct.StepDoubling` refuses it (use it around `Milstein`).
    """

    order: ClassVar[float] = 0.5
    weak_order: ClassVar[float] = 1.0
    noise_types: ClassVar[frozenset[NoiseType]] = ALL_NOISE
    sde_types: ClassVar[frozenset[SDEType]] = frozenset({SDEType.ITO})

    def strong_order(self, noise_type: NoiseType) -> float:
        """1.0 for additive noise (the method is then Milstein's), 0.5 otherwise."""
        return 1.0 if noise_type == NoiseType.ADDITIVE else self.order

    def advance(
        self, term: SDETerm, t0: Tensor, y0: Tensor, h: Tensor, dw: Tensor, start: tuple[Tensor, Tensor], args: Any
    ) -> tuple[Tensor, int]:
        """$y_0 + \\mu h + \\sigma \\Delta W$ `[B, *state]` from `start = (drift, diffusion)` at `(t0, y0)`; no
        further evaluations."""
        drift, diffusion = start
        return y0 + step_size(h, y0) * drift + term.prod(diffusion, dw), 0
