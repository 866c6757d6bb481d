"""Kernels shared by the state-space layers: Krylov powers by repeated squaring, causal FFT convolution.

Reference: Gu et al., "Combining Recurrent, Convolutional, and Continuous-time Models with
Linear State-Space Layers", NeurIPS 2021, Sec. 3.1 and App. C.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def krylov(a: Tensor, v: Tensor, length: int) -> Tensor:
    """The Krylov sequence $(v, A v, A^2 v, \\dots, A^{L-1} v)$ by repeated squaring.

    The sequence doubles at each round: the known block $(v, \\dots, A^{k-1} v)$ is multiplied by
    $A^k$ in one batched matmul, then $A^k$ is squared; about $2 \\log_2 L$ matmuls in all, with
    O(N L) memory per column instead of L sequential matrix-vector products.

    Args:
        a: `[..., N, N]` matrices.
        v: `[..., N, R]` starting columns (broadcast against `a`'s leading dims).
        length: L >= 1, the number of powers.

    Returns:
        `[..., L, N, R]`: entry k is $A^k v$.
    """
    # Columns [..., N, k, R]: one plain batched matmul per round (a broadcast matmul would copy A k times).
    powers = v.unsqueeze(-2)
    square = a
    while powers.shape[-2] < length:
        known = powers[..., : length - powers.shape[-2], :]
        block = (square @ known.flatten(-2)).unflatten(-1, known.shape[-2:])
        powers = torch.cat([powers, block], dim=-2)
        if powers.shape[-2] < length:
            square = square @ square
    return powers.movedim(-2, -3)


def power_kernel(a: Tensor, left: Tensor, right: Tensor, length: int) -> Tensor:
    """The sequence $K_k = \\text{left}\\, A^k\\, \\text{right}$ for $k < L$, e.g. the SSM kernel $C \\bar A^k \\bar B$.

    Baby step, giant step: with $s = \\lceil \\sqrt L \\rceil$ and $k = i + j s$,
    $K_k = (\\text{left}\\, A^i)(A^{js}\\, \\text{right})$. Both factors are Krylov sequences of
    length about $\\sqrt L$ (of $A^T$ from the left, of $A^s$ from the right), each built by
    repeated squaring, so the cost is $O(N^2 \\sqrt L + N L)$ per system instead of the
    $O(N^2 L)$ of the full Krylov matrix $(\\bar B, \\bar A \\bar B, \\dots)$, and the memory
    $O(N \\sqrt L)$.

    Args:
        a: `[..., N, N]` matrices.
        left: `[..., M, N]` rows (e.g. C).
        right: `[..., N, R]` columns (e.g. $\\bar B$ as one column, or $\\bar A x_0$ per sample).
        length: L >= 1.

    Returns:
        `[..., M, R, L]`.
    """
    inner = math.isqrt(length - 1) + 1
    outer = -(-length // inner)
    rows = krylov(a.mT, left.mT, inner)  # [..., inner, N, M]: (left A^i)^T
    columns = krylov(torch.linalg.matrix_power(a, inner), right, outer)  # [..., outer, N, R]
    return torch.einsum("...inm,...jnr->...mrji", rows, columns).flatten(-2)[..., :length]


def causal_convolution(u: Tensor, k: Tensor) -> Tensor:
    """$y_t = \\sum_{s \\le t} k_{t-s} u_s$ along the last dim, by FFT with zero padding to 2L.

    Args:
        u: `[..., L]` signals.
        k: `[..., L]` kernels (broadcast against `u`).

    Returns:
        `[..., L]` the causal (not circular) convolution.
    """
    length = u.shape[-1]
    spectrum = torch.fft.rfft(u, n=2 * length) * torch.fft.rfft(k, n=2 * length)
    return torch.fft.irfft(spectrum, n=2 * length)[..., :length]
