"""The augmented adjoint SDE of `StochasticAdjoint`, evaluated per sample.

For a Stratonovich SDE $dy = f\\,dt + g \\circ dW$ the backward state is, per sample, the
flattened $z = [y, a, a_\\theta]$ of the state `[N]`, its adjoint `[N]` and the adjoint of the
differentiable inputs `[P]`, and it solves backwards in time, on the same Brownian path,

$$dy = f\\,dt + g \\circ dW,\\quad da = -a^\\top \\partial_y f\\,dt - a^\\top \\partial_y g \\circ dW,\\quad
da_\\theta = -a^\\top \\partial_\\theta f\\,dt - a^\\top \\partial_\\theta g \\circ dW$$

(Li, Wong, Chen & Duvenaud, "Scalable Gradients for Stochastic Differential Equations",
AISTATS 2020, section 3; in Stratonovich form time reversal is the ordinary chain rule).
It is an SDE with general noise: its diffusion is a `[B, 2N + P, M]` matrix whose column m
holds $g_m$ and the products of $a$ with the derivatives of $g_m$ (for diagonal noise
M = N and $g_m$ is $g$'s m-th entry). One evaluation of $f$ and $g$ per sample gives the
drift and every column, by `torch.func.vmap` over per-sample vector-Jacobian products.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import IncompatibleTermError
from ..terms.base import AbstractDriftTerm
from ..terms.noise import NoiseTerm, NoiseType, SDEType
from ..terms.ode import ODETerm
from ..terms.sde import SDETerm
from ._adjoint_field import AdjointSystem, check_hidden_leaves


class _Fields(AbstractDriftTerm):
    """The drift and diffusion of an `SDETerm` side by side: `[B, N + N M]` (`[B, 2N]` for
    diagonal noise), one call of each, so that one per-sample VJP sees both."""

    def __init__(self, term: SDETerm):
        super().__init__()
        self.sde = term

    def vector_field(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        drift = self.sde.drift_field(t, y, args)
        diffusion = self.sde.noise.g(t, y, args)
        return torch.cat([drift.flatten(1), diffusion.flatten(1)], dim=1)


class _Columns:
    """The Brownian motion of the augmented SDE: the forward one with its increments flattened
    to `[B, M]` (diagonal noise over a `[B, *state]` state has M = N channels)."""

    def __init__(self, brownian: Any):
        self.brownian = brownian
        self.shape = (brownian.shape[0], int(torch.Size(brownian.shape[1:]).numel()))
        self.dtype, self.device = brownian.dtype, brownian.device

    def increment(self, ta: Tensor, tb: Tensor) -> Tensor:
        return self.brownian.increment(ta, tb).reshape(self.shape)


class SDEAdjointSystem:
    """The augmented adjoint SDE of a Stratonovich `SDETerm` as a term for the step loop.

    Args:
        term: the forward term; its parameters that require grad are differentiated.
        args: the `args` of the solve; its tensor leaves that require grad are differentiated.
        state_shape: the per-sample state shape `*state`.
    """

    def __init__(self, term: SDETerm, args: Any, state_shape: torch.Size):
        self.sde = term
        self.system = AdjointSystem(_Fields(term), args, state_shape)
        self.state_size = self.system.state_size
        self.input_size = self.system.input_size
        self.inputs = self.system.inputs
        self.channels = _Columns(term.noise.brownian)
        self._cache: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    def probe(self, t0: Tensor, y0: Tensor) -> None:
        """Check at `(t0 [B], y0 [B, *state])` that no hidden tensor needs a gradient and that
        calling the fields one sample at a time reproduces the batched call.

        Raises:
            IncompatibleTermError: either check fails.
        """
        with torch.enable_grad():
            out = self.system.call(self.inputs, t0, y0.detach())
        check_hidden_leaves(out, self.inputs, "StochasticAdjoint")
        diagonal = self.sde.noise_type == NoiseType.DIAGONAL
        try:
            per_sample = self._evaluate(t0, y0.detach(), torch.zeros_like(y0))[0]
            same = torch.allclose(per_sample, _values(out.detach(), self.state_size, diagonal))
        except Exception:  # noqa: BLE001 - any failure under vmap means the fields are not per-sample
            same = False
        if not same:
            raise IncompatibleTermError(
                "StochasticAdjoint calls the drift and diffusion one sample at a time (torch.func.vmap), which does "
                "not reproduce the batched call here (e.g. a field holding per-sample data); use "
                "gradient=nct.ReversibleAdjoint() with nct.ReversibleHeun(), or nct.Backprop()"
            )

    def term(self) -> SDETerm:
        """The augmented SDE: general Stratonovich noise on the forward Brownian motion."""
        noise = NoiseTerm(self._diffusion, self.channels, NoiseType.GENERAL, SDEType.STRATONOVICH)
        return SDETerm(ODETerm(self._drift), noise)

    def _drift(self, t: Tensor, z: Tensor, args: Any) -> Tensor:
        return self._parts(t, z)[0]

    def _diffusion(self, t: Tensor, z: Tensor, args: Any) -> Tensor:
        return self._parts(t, z)[1]

    def _parts(self, t: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Drift `[B, 2N + P]` and diffusion `[B, 2N + P, M]` at `(t, z)`, computed together:
        a solver asks for both at one point, one after the other."""
        if self._cache is None or self._cache[0] is not t or self._cache[1] is not z:
            n, batch = self.state_size, z.shape[0]
            y = z[:, :n].reshape(batch, *self.system.state_shape)
            a = z[:, n : 2 * n].reshape(batch, *self.system.state_shape)
            out, g_y, g_inputs = self._evaluate(t, y, a)
            rows = [out.reshape(batch, -1, n).transpose(1, 2), -g_y.reshape(batch, -1, n).transpose(1, 2)]
            rows += [-g.reshape(batch, g.shape[1], -1).transpose(1, 2) for g in g_inputs]
            columns = torch.cat(rows, dim=1)
            self._cache = (t, z, columns[..., 0], columns[..., 1:])
        return self._cache[2], self._cache[3]

    def _evaluate(self, t: Tensor, y: Tensor, a: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """Per sample, the fields and their VJPs with every cotangent at once: the drift with
        cotangent $a$ and diffusion column m with cotangent $a$ on that column. Returns
        `[B, 1 + M, N]` values (the drift, then each column of $g$), `[B, 1 + M, N]` VJPs in
        $y$ and `[B, 1 + M, *input.shape]` VJPs in each input."""
        n = self.state_size
        diagonal = self.sde.noise_type == NoiseType.DIAGONAL

        def one(inputs: tuple[Tensor, ...], tb: Tensor, yb: Tensor, ab: Tensor):
            def fields(inputs: tuple[Tensor, ...], yb: Tensor) -> Tensor:
                return self.system.call(inputs, tb.unsqueeze(0), yb.unsqueeze(0)).squeeze(0)

            out, pullback = torch.func.vjp(fields, inputs, yb)
            flat_a = ab.reshape(n)
            eye = torch.eye(out[n:].numel() // n, dtype=ab.dtype, device=ab.device)
            # Cotangent of column m: a on g's column m (on entry m alone for diagonal noise).
            columns = torch.diag_embed(flat_a) if diagonal else flat_a[None, :, None] * eye[:, None, :]
            cotangents = torch.cat([torch.cat([flat_a, torch.zeros_like(out[n:])])[None], _pad(columns, n)])
            g_inputs, g_y = torch.func.vmap(pullback)(cotangents)
            return _values(out, n, diagonal), g_y.reshape(-1, n), g_inputs

        return torch.func.vmap(one, in_dims=(None, 0, 0, 0))(self.inputs, t, y, a)


def _values(out: Tensor, n: int, diagonal: bool) -> Tensor:
    """`[..., 1 + M, N]` the drift and the columns of g from `[..., N + N M]` fields side by side."""
    drift, diffusion = out[..., :n], out[..., n:].unflatten(-1, (n, -1))
    columns = torch.diag_embed(diffusion[..., 0]) if diagonal else diffusion.transpose(-1, -2)
    return torch.cat([drift.unsqueeze(-2), columns], dim=-2)


def _pad(columns: Tensor, n: int) -> Tensor:
    """`[M, N + N M]` the cotangents `[M, N, M']` of g's columns, after zeros for the drift."""
    flat = columns.reshape(columns.shape[0], -1)
    return torch.cat([torch.zeros_like(flat[:, :n]), flat], dim=1)
