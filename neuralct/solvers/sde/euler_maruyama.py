"""The Euler-Maruyama method for Itô SDEs (Maruyama, 1955)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from ...terms.noise import NoiseType, SDEType
from ...terms.sde import SDETerm
from ..base import Carry, StepResult
from .base import ALL_NOISE, AbstractSDESolver, brownian_step, linear_coefficients, step_size


@dataclass(frozen=True)
class EulerMaruyama(AbstractSDESolver):
    """Euler-Maruyama: $y_1 = y_0 + \\mu(t_0, y_0)\\,h + \\sigma(t_0, y_0)\\,\\Delta W$.

    Itô SDEs with any noise type; strong order 0.5 (1.0 for additive noise), weak order 1
    (Kloeden & Platen, "Numerical Solution of Stochastic Differential Equations", Springer
    1992, section 10.2; Maruyama, "Continuous Markov processes and stochastic equations",
    Rend. Circ. Mat. Palermo 4, 1955). Two evaluations per step (drift + diffusion).
    Fixed-step only: use `nct.ConstantStep(dt)`.
    """

    order: ClassVar[float] = 0.5
    weak_order: ClassVar[float] = 1.0
    noise_types: ClassVar[frozenset[NoiseType]] = ALL_NOISE
    sde_types: ClassVar[frozenset[SDEType]] = frozenset({SDEType.ITO})

    @property
    def reads_step_end(self) -> bool:
        """`False`: drift and diffusion are read at the step's start only, so steps land
        exactly on jump times and take the Brownian increment over the whole gap."""
        return False

    def strong_order(self, noise_type: NoiseType) -> float:
        """1.0 for additive noise (the method is then Milstein's), 0.5 otherwise."""
        return 1.0 if noise_type == NoiseType.ADDITIVE else self.order

    def step(
        self, term: SDETerm, t0: Tensor, y0: Tensor, h: Tensor, carry: Carry, args: Any, dense: bool
    ) -> StepResult:
        """One step of signed size `h` `[B]` from `(t0 [B], y0 [B, *state])`."""
        dw = brownian_step(term, t0, h)
        drift = term.drift_field(t0, y0, args)
        diffusion = term.diffusion(t0, y0, args)
        y1 = y0 + step_size(h, y0) * drift + term.prod(diffusion, dw)
        return StepResult(y1=y1, error=None, carry=(), evals=2, coeffs=linear_coefficients(y0, y1, dense))
