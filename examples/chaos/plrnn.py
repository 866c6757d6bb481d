"""PLRNN: the piecewise-linear recurrent neural network of Durstewitz's lab, a discrete-time latent
model for reconstructing dynamical systems from their observations.

$$z_t = A z_{t-1} + W \\operatorname{relu}(z_{t-1}) + h, \\qquad x_t = B z_t,$$

with latent state $z_t \\in \\mathbb R^M$, $A$ diagonal, $W$ off-diagonal (its diagonal is held at 0
by a mask, so that self-coupling lives in $A$ alone), bias $h$ and a linear observation model $B$
`[obs, M]` without bias. The map is linear inside each orthant of $z$ (which units are active), so
its Jacobian $A + W \\operatorname{diag}(z > 0)$ is exact and cheap, and a trained PLRNN can be
chaotic like the system it learned. The data-inferred state $\\hat z_t = B^{+} x_t$ (pseudo-inverse)
is what sparsely forced BPTT (`forcing.py` beside this module) puts in place of the latent state.

Initialisation (ours, documented because it matters for a contracting start): $A = a I$ with
$a = 0.9$ by default (every unit decays on its own), off-diagonal $W_{ij} \\sim \\mathcal N(0, s^2 / M)$
with $s = 0.1$, $h = 0$ and $B_{ij} \\sim \\mathcal N(0, 1/M)$, so that $B z$ has entries of the order
of $z$'s. The reference code draws the joint matrix $[A, W]$ and $h$ uniformly in
$\\pm 1/\\sqrt M$ (`PLRNN_Step.init_AW_uniform`) and offers a Talathi-Vartak init (identity plus a
small positive matrix, scaled to spectral radius 1); both start close to a contracting or neutral
linear map, as this one does.

Reference: Durstewitz, "A state space approach for piecewise-linear recurrent neural networks for
identifying computational dynamics from neural measurements", PLoS Comput Biol 2017; the model as
used by Mikhaeil, Monfared & Durstewitz, "On the difficulty of learning chaotic dynamics with
RNNs", NeurIPS 2022 (`DurstewitzLab/ChaosRNN`, `bptt/PLRNN_model.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from neuralct._checks import check_int, check_number, check_sizes, describe
from neuralct.errors import InvalidInputError


class PLRNN(nn.Module):
    """Piecewise-linear RNN $z_t = A z_{t-1} + W \\operatorname{relu}(z_{t-1}) + h$ read out by $x_t = B z_t$.

    Args:
        latent: latent size M (at least 1).
        observed: observation size (at least 1). With $B$ of full row rank (`observed <= latent`,
            the usual case) `observe(infer_state(x)) = x`; with full column rank
            (`observed >= latent`) `infer_state(observe(z)) = z`.
        decay: the initial diagonal of $A$ (0.9: each unit decays by 10% a step).
        coupling_scale: $s$, the initial off-diagonal $W_{ij} \\sim \\mathcal N(0, s^2/M)$.
        generator: seeds the initial parameters (default: torch's global generator).

    Attributes:
        diagonal: `[M]` the diagonal of $A$.
        coupling: `[M, M]` the raw $W$; use `coupling_matrix()`, which zeroes its diagonal.
        bias: `[M]` $h$.
        readout: `[obs, M]` $B$.
    """

    def __init__(
        self,
        latent: int,
        observed: int,
        *,
        decay: float = 0.9,
        coupling_scale: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_sizes(latent=latent, observed=observed)
        check_number("decay", decay, 0.0)
        check_number("coupling_scale", coupling_scale, 0.0)
        self.latent, self.observed = latent, observed
        dtype = torch.get_default_dtype()
        mask = 1.0 - torch.eye(latent, dtype=dtype)
        self.register_buffer("off_diagonal", mask)
        coupling = torch.randn(latent, latent, generator=generator, dtype=dtype) * coupling_scale / math.sqrt(latent)
        readout = torch.randn(observed, latent, generator=generator, dtype=dtype) / math.sqrt(latent)
        self.diagonal = nn.Parameter(torch.full((latent,), float(decay), dtype=dtype))
        self.coupling = nn.Parameter(coupling * mask)
        self.bias = nn.Parameter(torch.zeros(latent, dtype=dtype))
        self.readout = nn.Parameter(readout)

    def coupling_matrix(self) -> Tensor:
        """`[M, M]` $W$ with its diagonal zeroed (the mask also zeroes the diagonal's gradient)."""
        return self.coupling * self.off_diagonal

    def step(self, z: Tensor, t: int | None = None) -> Tensor:
        """One step of the latent map, row by row: `[B, M] -> [B, M]`.

        `t` (a step index) is accepted and ignored, so that `step` is a map for
        `neuralct.stability.lyapunov_spectrum` and `gradient_horizon`.

        Raises:
            InvalidInputError: `z` is not `[B, M]`.
        """
        self._check_state(z, "z")
        return self.step_function()(z)

    def step_function(self) -> Callable[[Tensor], Tensor]:
        """The step `[B, M] -> [B, M]` with the masked coupling formed once, for loops over many steps.

        Call it again after the parameters change in place (it holds the current masked $W$,
        through which gradients still flow). It does not check shapes.
        """
        coupling_t = self.coupling_matrix().T
        diagonal, bias = self.diagonal, self.bias

        def advance(z: Tensor) -> Tensor:
            return torch.addcmul(torch.addmm(bias, torch.relu(z), coupling_t), diagonal, z)

        return advance

    def observe(self, z: Tensor) -> Tensor:
        """$x = B z$: `[..., M] -> [..., obs]`.

        Raises:
            InvalidInputError: the last dimension of `z` is not M.
        """
        self._check_last(z, self.latent, "z", "latent")
        return z @ self.readout.T

    def infer_state(self, x: Tensor) -> Tensor:
        """The data-inferred state $B^{+} x$: `[..., obs] -> [..., M]`.

        The pseudo-inverse is computed afresh at every call, so it follows $B$ during training
        (and gradients reach $B$ through it, as in the reference code).

        Raises:
            InvalidInputError: the last dimension of `x` is not `observed`.
        """
        self._check_last(x, self.observed, "x", "observed")
        return x @ torch.linalg.pinv(self.readout).T

    def rollout(self, z0: Tensor, steps: int) -> Tensor:
        """Free-running latent trajectory from `z0` `[B, M]`: `[B, steps + 1, M]` with `z0` first.

        Raises:
            InvalidInputError: `z0` not `[B, M]` or `steps` not an int >= 0.
        """
        check_int("steps", steps, 0)
        self._check_state(z0, "z0")
        advance = self.step_function()
        states = [z0]
        for _ in range(steps):
            states.append(advance(states[-1]))
        return torch.stack(states, dim=1)

    def forward(self, z0: Tensor, steps: int) -> Tensor:
        """The observations of `rollout(z0, steps)`: `[B, steps + 1, obs]`."""
        return self.observe(self.rollout(z0, steps))

    def _check_state(self, z: Tensor, name: str) -> None:
        if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != self.latent:
            raise InvalidInputError(
                f"`{name}` must be [B, {self.latent}] (latent size {self.latent}); got {describe(z)}"
            )

    def _check_last(self, tensor: Tensor, size: int, name: str, meaning: str) -> None:
        if not isinstance(tensor, Tensor) or tensor.ndim < 1 or tensor.shape[-1] != size:
            raise InvalidInputError(f"`{name}` must end in the {meaning} size {size}; got {describe(tensor)}")


__all__ = ["PLRNN"]
