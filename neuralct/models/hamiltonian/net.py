"""Hamiltonian deep neural networks (H-DNNs): H1 (forward Euler) and H2 (symplectic Euler).

A feed-forward classifier whose $L$ layers are the steps of a Hamiltonian ODE
$\\dot y = J K(t)^\\top \\tanh(K(t) y + b(t))$ on $[0, T]$, $T = L h$, with $K, b$ constant on each
layer (`neuralct.models.hamiltonian.terms`). The input $x$ `[B, d]` is embedded into the initial state
$y_0$ `[B, 2n]`, the term is integrated with `ConstantStep(h)`, and a linear head maps $y_L$ to
logits.

- **H1**: a full $K$, forward Euler: $y_{j+1} = y_j + h J K_j^\\top \\tanh(K_j y_j + b_j)$.
- **H2**: $y = (p, q)$, block-diagonal $K = \\mathrm{diag}(K_p, K_q)$, symplectic Euler
  (`SymplecticEuler`): $q_{j+1} = q_j - h K_{p,j}^\\top \\tanh(K_{p,j} p_j + b_{p,j})$, then
  $p_{j+1} = p_j + h K_{q,j}^\\top \\tanh(K_{q,j} q_{j+1} + b_{q,j})$. Every layer map is symplectic,
  so $\\|\\partial y_L / \\partial y_j\\|_2 \\ge 1$: the backpropagated gradients cannot vanish.

Reference: Galimberti, Furieri, Xu & Ferrari-Trecate, "Hamiltonian Deep Neural Networks
Guaranteeing Non-vanishing Gradients by Design", arXiv:2105.13205; code `DecodEPFL/HamiltonianNet`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..._checks import check_choice, check_number, check_sizes, describe
from ...controllers.constant import ConstantStep
from ...errors import InvalidInputError
from ...solve import solve
from ...solvers.rk import Euler
from .symplectic_euler import SymplecticEuler
from .terms import HamiltonianTerm, SeparableHamiltonianTerm

KINDS = ("H1", "H2")
EMBEDDINGS = ("pad", "linear")


class HamiltonianNet(nn.Module):
    """An H1- or H2-DNN classifier: embed `x` `[B, d]` into $y_0$ `[B, 2n]`, take $L$ Hamiltonian layers, read out.

    Args:
        inputs: $d$, features of `x`.
        outputs: logits per sample.
        kind: `"H2"` (block-diagonal $K$, symplectic Euler; default) or `"H1"` (full $K$, forward Euler).
        features: $n$; the state $y = (p, q)$ has $2n$ entries.
        layers: $L$, the number of steps (default 64).
        step: $h > 0$, the step size; the ODE runs on $[0, L h]$.
        embedding: `"pad"` ($y_0 = (x, 0)$, needs $d \\le 2n$; the paper's choice) or `"linear"`
            (a learned `nn.Linear(d, 2n)`).
        alpha: $\\alpha \\ge 0$ of the smoothness `regulariser` (the reference code uses 5e-4).
        std: the layer parameters start i.i.d. $N(0, \\mathrm{std}^2)$.

    Attributes:
        term: the `SeparableHamiltonianTerm` (H2) or `HamiltonianTerm` (H1) holding $K_j, b_j$.
        embedding: `nn.Linear(d, 2n)` or `None` for padding.
        head: `nn.Linear(2n, outputs)`.

    Raises:
        InvalidInputError: a size not a positive int, `kind` or `embedding` not one of the choices,
            `step` not positive, `alpha` negative, or `"pad"` with $d > 2n$.

    Example:
        >>> import torch
        >>> net = HamiltonianNet(2, 2, kind="H2", features=2, layers=64, step=0.05)
        >>> logits = net(torch.randn(8, 2))  # [8, 2]
        >>> loss = torch.nn.functional.cross_entropy(logits, torch.zeros(8, dtype=torch.long)) + net.regulariser()
    """

    def __init__(
        self,
        inputs: int,
        outputs: int,
        *,
        kind: str = "H2",
        features: int = 2,
        layers: int = 64,
        step: float = 0.05,
        embedding: str = "pad",
        alpha: float = 5e-4,
        std: float = 1.0,
    ):
        super().__init__()
        check_sizes(inputs=inputs, outputs=outputs, features=features, layers=layers)
        check_choice("kind", kind, KINDS)
        check_choice("embedding", embedding, EMBEDDINGS)
        if embedding == "pad" and inputs > 2 * features:
            raise InvalidInputError(
                f'`embedding="pad"` needs inputs <= 2 * features = {2 * features}; got inputs = {inputs} '
                '(raise `features` or use embedding="linear")'
            )
        self.inputs, self.kind, self.step = inputs, kind, check_number("step", step, 0.0, open_low=True)
        self.alpha = check_number("alpha", alpha, 0.0)
        term_class = SeparableHamiltonianTerm if kind == "H2" else HamiltonianTerm
        self.term = term_class(features, layers, layers * self.step, std=std)
        self.embedding = nn.Linear(inputs, 2 * features) if embedding == "linear" else None
        self.head = nn.Linear(2 * features, outputs)
        self.solver = SymplecticEuler() if kind == "H2" else Euler()

    def embed(self, x: Tensor) -> Tensor:
        """$y_0$ `[B, 2n]` from `x` `[B, d]`: zero-padded or linearly mapped.

        Raises:
            InvalidInputError: `x` not `[B, d]`.
        """
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.inputs:
            raise InvalidInputError(f"`x` must be a tensor [B, {self.inputs}]; got {describe(x)}")
        if self.embedding is not None:
            return self.embedding(x)
        return nn.functional.pad(x, (0, 2 * self.term.features - self.inputs))

    def propagate(self, y0: Tensor) -> Tensor:
        """$y_L$ `[B, 2n]`: the term integrated from `y0` `[B, 2n]` over $[0, L h]$ in $L$ steps of $h$."""
        t = torch.tensor([0.0, self.term.span], dtype=torch.float64, device=y0.device)
        max_steps = max(4096, 2 * self.term.layers)
        sol = solve(self.term, y0, t, solver=self.solver, controller=ConstantStep(self.step), max_steps=max_steps)
        return sol.ys[:, -1]

    def forward(self, x: Tensor) -> Tensor:
        """Logits `[B, outputs]` for `x` `[B, d]`."""
        return self.head(self.propagate(self.embed(x)))

    def regulariser(self) -> Tensor:
        """$\\alpha h \\sum_j \\tfrac12 (\\|K_{j+1} - K_j\\|_F^2 + \\|b_{j+1} - b_j\\|^2)$ `[]`: the paper's
        smoothness penalty on the layer parameters (for H2 the norms run over both blocks)."""
        return self.alpha * self.step * self.term.roughness()

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, inputs={self.inputs}, step={self.step}, alpha={self.alpha}"


__all__ = ["EMBEDDINGS", "KINDS", "HamiltonianNet"]
