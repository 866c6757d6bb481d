"""The stochastic differential equation $dy = \\mu(t, y)\\,dt + \\sigma(t, y)\\,dW(t)$ as one term.

`SDETerm` was called `MultiTerm` before; that name, which diffrax users read as a general sum of
terms, stays as a deprecated alias for one release.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor

from .._checks import describe
from .base import AbstractDriftTerm, AbstractTerm
from .noise import NoiseTerm, NoiseType, SDEType


class SDETerm(AbstractTerm):
    """An SDE $dy = \\mu(t, y)\\,dt + \\sigma(t, y)\\,dW(t)$: a drift term plus a noise term.

    It is deliberately *not* an `AbstractDriftTerm`, so ODE solvers refuse it; integrate
    it with an SDE solver (`nct.EulerMaruyama`, `nct.Milstein`, `nct.StochasticHeun`,
    `nct.ReversibleHeun`) and `nct.ConstantStep(dt)`.

    Args:
        drift: the drift $\\mu$, an `ODETerm` (or any `AbstractDriftTerm`, e.g. a
            `ControlTerm`). Its `vector_field(t, y, args)` returns `[B, *state]`.
        noise: the diffusion [`NoiseTerm`][neuralct.NoiseTerm], with its Brownian motion,
            noise type and SDE type (Itô or Stratonovich; the drift is read accordingly).

    Raises:
        TypeError: `drift` is not a drift term or `noise` is not a `NoiseTerm`.

    Example:
        >>> import torch, neuralct as nct
        >>> bm = nct.BrownianPath(0.0, 1.0, shape=(8, 1), seed=0)
        >>> sde = nct.SDETerm(nct.ODETerm(lambda t, y, a: -y), nct.NoiseTerm(lambda t, y, a: 0.1 * y, bm))
        >>> sol = nct.solve(sde, torch.ones(8, 1), torch.linspace(0, 1, 5),
        ...                 solver=nct.EulerMaruyama(), controller=nct.ConstantStep(0.01))
    """

    def __init__(self, drift: AbstractDriftTerm, noise: NoiseTerm):
        super().__init__()
        if not isinstance(drift, AbstractDriftTerm):
            raise TypeError(f"`drift` must be an ODETerm or another AbstractDriftTerm; got {describe(drift)}")
        if not isinstance(noise, NoiseTerm):
            raise TypeError(f"`noise` must be a NoiseTerm; got {describe(noise)}")
        self.drift = drift
        self.noise = noise

    @property
    def noise_type(self) -> NoiseType:
        """The noise term's [`NoiseType`][neuralct.NoiseType]."""
        return self.noise.noise_type

    @property
    def sde_type(self) -> SDEType:
        """The noise term's [`SDEType`][neuralct.SDEType]."""
        return self.noise.sde_type

    def drift_field(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        """$\\mu(t, y)$: `t` `[B]`, `y` `[B, *state]` -> `[B, *state]`."""
        return self.drift.vector_field(t, y, args)

    def diffusion(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        """$\\sigma(t, y)$, shape-checked (see `NoiseTerm.diffusion`)."""
        return self.noise.diffusion(t, y, args)

    def increment(self, ta: Tensor, tb: Tensor) -> Tensor:
        """Brownian increments over `[ta, tb]` (`[B]` each) -> `[B, M]` (or `[B, *state]`)."""
        return self.noise.increment(ta, tb)

    def prod(self, g_value: Tensor, dw: Tensor) -> Tensor:
        """$\\sigma\\,\\Delta W$ -> `[B, *state]` (see `NoiseTerm.prod`)."""
        return self.noise.prod(g_value, dw)

    def jump_times(self, ts: Tensor) -> Tensor | None:
        """The drift's non-smooth times (e.g. a `ControlTerm`'s knots); see `AbstractTerm.jump_times`."""
        return self.drift.jump_times(ts)


class MultiTerm(SDETerm):
    """Deprecated: the former name of [`SDETerm`][neuralct.SDETerm], kept for one release.

    Raises:
        DeprecationWarning: (a warning) on every construction.
    """

    def __init__(self, drift: AbstractDriftTerm, noise: NoiseTerm):
        warnings.warn(
            "MultiTerm is now SDETerm (it is a drift plus a noise term, not a general sum); "
            "MultiTerm will be removed in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(drift, noise)
