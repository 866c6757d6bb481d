"""Exact and implicit discretizations of the linear system $\\dot x = A x + B u$.

Both return the matrices of the recurrence $x_k = \\bar A x_{k-1} + \\bar B u_k$ for step
sizes `dt`, batched over any leading dimensions of `A`, `B` and `dt` (which broadcast):
one per feature, per sample, or per step of an irregular grid.

References: Zhang, Chong, Chiang & Fu (GBT), and Gu et al., "Combining Recurrent,
Convolutional, and Continuous-time Models with Linear State-Space Layers", NeurIPS 2021.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..._checks import describe
from ...errors import InvalidInputError


def gbt(a: Tensor, b: Tensor, dt: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """Generalized bilinear transform with parameter $\\alpha$.

    $\\bar A = (I - \\alpha \\Delta A)^{-1}(I + (1 - \\alpha)\\Delta A)$,
    $\\bar B = \\Delta (I - \\alpha \\Delta A)^{-1} B$: forward Euler at $\\alpha = 0$,
    backward Euler at 1, the bilinear (Tustin, trapezoid) rule at 1/2.

    Args:
        a: `[..., N, N]` state matrix.
        b: `[..., N]` input vector (single input).
        dt: `[...]` step sizes, > 0.
        alpha: in [0, 1].

    Returns:
        `(A_bar [..., N, N], B_bar [..., N])` over the broadcast leading dimensions.
    """
    _check(a, b, dt)
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise InvalidInputError(f"`alpha` must be a number in [0, 1]; got {alpha!r}")
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    step_a = dt[..., None, None] * a
    left = eye - alpha * step_a
    right = eye + (1.0 - alpha) * step_a
    a_bar = torch.linalg.solve(left, right)
    b_bar = torch.linalg.solve(left, (dt[..., None] * b).unsqueeze(-1)).squeeze(-1)
    return a_bar, b_bar


def zoh(a: Tensor, b: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
    """Zero-order hold: exact for input held constant over each step.

    $\\bar A = e^{\\Delta A}$ and $\\bar B = \\int_0^{\\Delta} e^{sA} ds\\, B$ (which is
    $A^{-1}(e^{\\Delta A} - I)B$ for invertible A), both read off one matrix exponential of the
    augmented matrix $\\Delta \\begin{pmatrix} A & B \\\\ 0 & 0 \\end{pmatrix}$, so a singular A
    needs no special case.

    Args:
        a: `[..., N, N]` state matrix.
        b: `[..., N]` input vector (single input).
        dt: `[...]` step sizes, > 0.

    Returns:
        `(A_bar [..., N, N], B_bar [..., N])` over the broadcast leading dimensions.
    """
    _check(a, b, dt)
    n = a.shape[-1]
    lead = torch.broadcast_shapes(a.shape[:-2], b.shape[:-1], dt.shape)
    augmented = torch.zeros(lead + (n + 1, n + 1), dtype=a.dtype, device=a.device)
    augmented[..., :n, :n] = a
    augmented[..., :n, n] = b
    exponential = torch.linalg.matrix_exp(dt[..., None, None] * augmented)
    return exponential[..., :n, :n], exponential[..., :n, n]


def _check(a: Tensor, b: Tensor, dt: Tensor) -> None:
    if not isinstance(a, Tensor) or a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise InvalidInputError(f"`a` must be a tensor [..., N, N]; got {describe(a)}")
    if not isinstance(b, Tensor) or b.ndim < 1 or b.shape[-1] != a.shape[-1]:
        raise InvalidInputError(f"`b` must be a tensor [..., N] with N = {a.shape[-1]}; got {describe(b)}")
    if not isinstance(dt, Tensor) or not bool((dt > 0).all()):
        raise InvalidInputError("`dt` must be a tensor of step sizes > 0")
