"""Hamiltonian terms $\\dot y = J \\nabla_y H(y, t)$ of the Hamiltonian deep networks (H-DNNs).

The state is $y = (p, q)$, each half `[B, n]`, so `y` is `[B, 2n]`. The Hamiltonian is

$$H(y, t) = \\sum_i \\log\\cosh\\big(K(t)\\, y + b(t)\\big)_i,$$

($\\tilde\\sigma = \\log\\cosh$, whose derivative is $\\sigma = \\tanh$), so
$\\nabla_y H = K^\\top \\tanh(K y + b)$. The sign convention is that of the paper's text (and of
`methods.md`, section 8): $J = J_1 = \\begin{pmatrix} 0 & I \\\\ -I & 0 \\end{pmatrix}$, i.e.

$$\\dot p = \\partial H / \\partial q, \\qquad \\dot q = -\\partial H / \\partial p.$$

(The reference code `DecodEPFL/HamiltonianNet` applies $-J_1$, the physicists'
$\\dot q = \\partial H/\\partial p$; the two differ by the direction of time, and a map is
symplectic for $J$ exactly when it is for $-J$.)

$K(t), b(t)$ are piecewise constant over `layers` $L$ equal pieces of $[0, T]$: layer $j$ holds on
$[j h, (j + 1) h)$ with $h = T / L$ (times before 0 read layer 0, times from $T$ on layer $L - 1$).
The interior boundaries are the term's `jump_times`, so solvers land on them. `layers=1` is the
time-invariant case.

- `HamiltonianTerm`: a full $K$ `[L, 2n, 2n]` (the H1-DNN).
- `SeparableHamiltonianTerm`: block-diagonal $K = \\mathrm{diag}(K_p, K_q)$, so that
  $H = H_p(p) + H_q(q)$, $\\dot p$ depends on $q$ only and $\\dot q$ on $p$ only; this is what the
  explicit symplectic Euler step (`neuralct.models.hamiltonian.SymplecticEuler`) needs
  (the H2-DNN).

Reference: Galimberti, Furieri, Xu & Ferrari-Trecate, "Hamiltonian Deep Neural Networks
Guaranteeing Non-vanishing Gradients by Design", arXiv:2105.13205 (IEEE TAC 2023); code
`DecodEPFL/HamiltonianNet`, `integrators/integrators.py`.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import torch
from torch import Tensor, nn

from ..._checks import check_int, check_number, describe
from ...errors import InvalidInputError
from ...terms.base import AbstractDriftTerm, merge_jump_times

_LOG2 = math.log(2.0)


def log_cosh(x: Tensor) -> Tensor:
    """$\\log\\cosh x$ elementwise, without overflow: $|x| + \\log(1 + e^{-2|x|}) - \\log 2$."""
    a = x.abs()
    return a + torch.log1p(torch.exp(-2 * a)) - _LOG2


class AbstractHamiltonianTerm(AbstractDriftTerm):
    """$\\dot y = J \\nabla_y H(y, t)$ with $y = (p, q)$ `[B, 2n]` and layer-wise constant parameters.

    Args:
        features: $n$, the size of $p$ and of $q$ (the state has $2n$).
        layers: $L \\ge 1$ pieces on which the parameters are constant.
        span: $T > 0$; layer $j$ holds on $[j T / L, (j + 1) T / L)$.

    Raises:
        InvalidInputError: `features` or `layers` not a positive int, `span` not positive and finite.
    """

    def __init__(self, features: int, layers: int = 1, span: float = 1.0):
        super().__init__()
        self.features = check_int("features", features)
        self.layers = check_int("layers", layers)
        self.span = check_number("span", span, 0.0, open_low=True)
        # Layer boundaries per (time dtype, device); not a buffer, which would have to share y's dtype.
        self._edges: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    @property
    def layer_step(self) -> float:
        """$h = T / L$, the time each layer lasts."""
        return self.span / self.layers

    @abc.abstractmethod
    def gradient(self, t: Tensor, y: Tensor) -> Tensor:
        """$\\nabla_y H$ `[B, 2n]` at times `t` `[B]` and states `y` `[B, 2n]`."""

    @abc.abstractmethod
    def p_rate(self, t: Tensor, p: Tensor, q: Tensor) -> Tensor:
        """$\\dot p = \\partial H / \\partial q$ `[B, n]` at `t` `[B]`, `p` `[B, n]`, `q` `[B, n]`."""

    @abc.abstractmethod
    def q_rate(self, t: Tensor, p: Tensor, q: Tensor) -> Tensor:
        """$\\dot q = -\\partial H / \\partial p$ `[B, n]` at `t` `[B]`, `p` `[B, n]`, `q` `[B, n]`."""

    @abc.abstractmethod
    def energy(self, t: Tensor | float, y: Tensor) -> Tensor:
        """$H(y, t)$ `[B]` per sample for `y` `[B, 2n]` at `t` (`[B]`, `[]` or a float)."""

    def vector_field(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        """$J \\nabla_y H = (\\partial H/\\partial q, -\\partial H/\\partial p)$: `t` `[B]`, `y` `[B, 2n]` -> `[B, 2n]`.

        Raises:
            InvalidInputError: `y` not `[B, 2n]` (an odd size or another $n$).
        """
        grad = self.gradient(t, y)
        n = self.features
        return torch.cat([grad[:, n:], -grad[:, :n]], dim=1)

    def split(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """`(p, q)`, each `[B, n]`, of a state `y` `[B, 2n]`.

        Raises:
            InvalidInputError: `y` not a `[B, 2n]` tensor.
        """
        self.check_state(y, "y", 2 * self.features)
        return y[:, : self.features], y[:, self.features :]

    def check_state(self, x: Tensor, name: str, size: int) -> None:
        """Raise `InvalidInputError` naming `name` unless `x` is a `[B, size]` tensor."""
        if not isinstance(x, Tensor):
            raise InvalidInputError(f"`{name}` must be a tensor [B, {size}]; got {describe(x)}")
        if x.ndim != 2 or x.shape[1] != size:
            what = "y = (p, q) of n each" if name == "y" else f"{name} of n = {self.features}"
            odd = " (an odd size cannot be split into p and q)" if name == "y" and x.ndim and x.shape[-1] % 2 else ""
            raise InvalidInputError(f"`{name}` must be [B, {size}] ({what}); got {tuple(x.shape)}{odd}")

    def check_halves(self, p: Tensor, q: Tensor) -> None:
        """Raise `InvalidInputError` unless `p` and `q` are both `[B, n]` with the same B."""
        self.check_state(p, "p", self.features)
        self.check_state(q, "q", self.features)
        if p.shape[0] != q.shape[0]:
            raise InvalidInputError(f"`p` and `q` must have the same batch size; got {p.shape[0]} and {q.shape[0]}")

    def layer_index(self, t: Tensor | float, batch: int) -> Tensor | int:
        """The layer each sample's time `t` (`[B]`, `[]` or a float) falls in: an int when every sample
        is in the same layer (always so for `layers=1`; the parameters then need no per-sample
        gather), else a `[B]` long tensor.

        Raises:
            InvalidInputError: `t` neither a scalar nor `[B]`.
        """
        if self.layers == 1:
            return 0
        t = torch.as_tensor(t)
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != batch):
            raise InvalidInputError(f"`t` must be [B] with B = {batch}, or a scalar; got {tuple(t.shape)}")
        index = torch.searchsorted(self._boundaries(t), t.reshape(-1), right=True)
        if index.shape[0] == 0:
            return 0
        first = int(index[0])
        if index.shape[0] == 1 or bool((index == first).all()):
            return first
        return index

    def jump_times(self, ts: Tensor) -> Tensor | None:
        """`[B, L - 1]` the layer boundaries $j T / L$, ordered along each row of `ts` `[B, K]`."""
        if self.layers == 1:
            return None
        return merge_jump_times(ts, self._boundaries(ts))

    def roughness(self) -> Tensor:
        """$\\tfrac12 \\sum_j \\|\\theta_{j+1} - \\theta_j\\|^2$ over every layer parameter $\\theta$ (`[]`).

        The smoothness penalty of Galimberti et al. without the factor $\\alpha h$; 0 for `layers=1`.
        """
        total = next(self.parameters()).new_zeros(())
        for param in self.parameters():
            total = total + 0.5 * param.diff(dim=0).pow(2).sum()
        return total

    def _boundaries(self, like: Tensor) -> Tensor:
        # Computed in float64 and rounded once to the time dtype, the same way for the loop's jump
        # times and for the layer lookup, so a time that lands on a boundary reads the next layer.
        dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
        key = (dtype, like.device)
        if key not in self._edges:
            edges = torch.arange(1, self.layers, dtype=torch.float64) * self.layer_step
            self._edges[key] = edges.to(device=like.device, dtype=dtype)
        return self._edges[key]

    def extra_repr(self) -> str:
        return f"features={self.features}, layers={self.layers}, span={self.span}"


def _affine(weight: Tensor, bias: Tensor, index: Tensor | int, x: Tensor) -> Tensor:
    """$K_j x + b_j$ `[B, m]` with `weight` `[L, m, m]`, `bias` `[L, m]`, `x` `[B, m]`; `index` is one
    layer for every sample (an int) or a `[B]` tensor of per-sample layers."""
    if isinstance(index, int):
        return torch.addmm(bias[index], x, weight[index].T)
    return torch.einsum("bij,bj->bi", weight[index], x) + bias[index]


def _transposed(weight: Tensor, index: Tensor | int, s: Tensor) -> Tensor:
    """$K_j^\\top s$ `[B, m]` for `s` `[B, m]` (see `_affine`)."""
    if isinstance(index, int):
        return s @ weight[index]
    return torch.einsum("bij,bi->bj", weight[index], s)


def _potential_gradient(weight: Tensor, bias: Tensor, index: Tensor | int, x: Tensor) -> Tensor:
    """$\\nabla_x \\sum \\log\\cosh(K_j x + b_j) = K_j^\\top \\tanh(K_j x + b_j)$ `[B, m]` (see `_affine`)."""
    return _transposed(weight, index, torch.tanh(_affine(weight, bias, index, x)))


def _potential(weight: Tensor, bias: Tensor, index: Tensor | int, x: Tensor) -> Tensor:
    """$\\sum \\log\\cosh(K_j x + b_j)$ `[B]` (see `_affine`)."""
    return log_cosh(_affine(weight, bias, index, x)).sum(dim=1)


class HamiltonianTerm(AbstractHamiltonianTerm):
    """The H1-DNN field: $H = \\sum \\log\\cosh(K(t) y + b(t))$ with a full $K$ `[L, 2n, 2n]`, $b$ `[L, 2n]`.

    Not separable, so only general ODE solvers integrate it (forward Euler gives the H1-DNN).

    Args:
        features: $n$ (the state `y` is `[B, 2n]`).
        layers: $L$ layers on $[0, T]$.
        span: $T$.
        std: $K$ and $b$ start i.i.d. $N(0, \\mathrm{std}^2)$ (the reference code's `randn`).

    Attributes:
        weight: `[L, 2n, 2n]` $K_j$.
        bias: `[L, 2n]` $b_j$.
    """

    def __init__(self, features: int, layers: int = 1, span: float = 1.0, *, std: float = 1.0):
        super().__init__(features, layers, span)
        std = check_number("std", std, 0.0, open_low=True)
        m = 2 * self.features
        self.weight = nn.Parameter(std * torch.randn(self.layers, m, m))
        self.bias = nn.Parameter(std * torch.randn(self.layers, m))

    def gradient(self, t: Tensor, y: Tensor) -> Tensor:
        """$K^\\top \\tanh(K y + b)$ `[B, 2n]` at `t` `[B]`, `y` `[B, 2n]`."""
        self.split(y)
        index = self.layer_index(t, y.shape[0])
        return _potential_gradient(self.weight, self.bias, index, y)

    def p_rate(self, t: Tensor, p: Tensor, q: Tensor) -> Tensor:
        """$\\partial H / \\partial q$ `[B, n]` (needs both halves: $H$ is not separable)."""
        self.check_halves(p, q)
        return self.gradient(t, torch.cat([p, q], dim=1))[:, self.features :]

    def q_rate(self, t: Tensor, p: Tensor, q: Tensor) -> Tensor:
        """$-\\partial H / \\partial p$ `[B, n]` (needs both halves: $H$ is not separable)."""
        self.check_halves(p, q)
        return -self.gradient(t, torch.cat([p, q], dim=1))[:, : self.features]

    def energy(self, t: Tensor | float, y: Tensor) -> Tensor:
        """$H(y, t)$ `[B]` for `y` `[B, 2n]`."""
        self.split(y)
        index = self.layer_index(t, y.shape[0])
        return _potential(self.weight, self.bias, index, y)


class SeparableHamiltonianTerm(AbstractHamiltonianTerm):
    """The H2-DNN field: block-diagonal $K = \\mathrm{diag}(K_p, K_q)$, so $H = H_p(p) + H_q(q)$ with
    $H_p = \\sum \\log\\cosh(K_p p + b_p)$, $H_q = \\sum \\log\\cosh(K_q q + b_q)$:

    $$\\dot p = K_q^\\top \\tanh(K_q q + b_q), \\qquad \\dot q = -K_p^\\top \\tanh(K_p p + b_p).$$

    Integrated by `SymplecticEuler` (explicit, symplectic) or by any ODE solver.

    Args:
        features: $n$ (the state `y` is `[B, 2n]`).
        layers: $L$ layers on $[0, T]$.
        span: $T$.
        std: the blocks and biases start i.i.d. $N(0, \\mathrm{std}^2)$.

    Attributes:
        weight_p, weight_q: `[L, n, n]` $K_{p,j}$, $K_{q,j}$.
        bias_p, bias_q: `[L, n]` $b_{p,j}$, $b_{q,j}$.
    """

    def __init__(self, features: int, layers: int = 1, span: float = 1.0, *, std: float = 1.0):
        super().__init__(features, layers, span)
        std = check_number("std", std, 0.0, open_low=True)
        shape = (self.layers, self.features)
        self.weight_p = nn.Parameter(std * torch.randn(*shape, self.features))
        self.weight_q = nn.Parameter(std * torch.randn(*shape, self.features))
        self.bias_p = nn.Parameter(std * torch.randn(*shape))
        self.bias_q = nn.Parameter(std * torch.randn(*shape))

    def gradient(self, t: Tensor, y: Tensor) -> Tensor:
        """$(K_p^\\top \\tanh(K_p p + b_p), K_q^\\top \\tanh(K_q q + b_q))$ `[B, 2n]` at `t` `[B]`, `y` `[B, 2n]`."""
        p, q = self.split(y)
        index = self.layer_index(t, y.shape[0])
        grad_p = _potential_gradient(self.weight_p, self.bias_p, index, p)
        return torch.cat([grad_p, _potential_gradient(self.weight_q, self.bias_q, index, q)], dim=1)

    def p_rate(self, t: Tensor, p: Tensor, q: Tensor) -> Tensor:
        """$\\dot p = K_q^\\top \\tanh(K_q q + b_q)$ `[B, n]`; reads `q` only (`p` is checked, not used)."""
        self.check_halves(p, q)
        index = self.layer_index(t, q.shape[0])
        return _potential_gradient(self.weight_q, self.bias_q, index, q)

    def q_rate(self, t: Tensor, p: Tensor, q: Tensor) -> Tensor:
        """$\\dot q = -K_p^\\top \\tanh(K_p p + b_p)$ `[B, n]`; reads `p` only (`q` is checked, not used)."""
        self.check_halves(p, q)
        index = self.layer_index(t, p.shape[0])
        return -_potential_gradient(self.weight_p, self.bias_p, index, p)

    def energy(self, t: Tensor | float, y: Tensor) -> Tensor:
        """$H_p(p) + H_q(q)$ `[B]` for `y` `[B, 2n]`."""
        p, q = self.split(y)
        index = self.layer_index(t, y.shape[0])
        return _potential(self.weight_p, self.bias_p, index, p) + _potential(self.weight_q, self.bias_q, index, q)


__all__ = ["AbstractHamiltonianTerm", "HamiltonianTerm", "SeparableHamiltonianTerm", "log_cosh"]
