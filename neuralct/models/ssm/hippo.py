"""HiPPO matrices: the (A, B) of the linear ODE whose state memorises its input's history.

Each builder returns the state matrix `A` `[N, N]` and input vector `B` `[N]` of
$\\dot c(t) = A c(t) + B u(t)$, in the normalised basis (Legendre or Laguerre polynomials
scaled to unit norm), as used by LSSL and S4.

Reference: Gu, Dao, Ermon, Rudra & Ré, "HiPPO: Recurrent Memory with Optimal Polynomial
Projections", NeurIPS 2020; Gu et al., "Combining Recurrent, Convolutional, and
Continuous-time Models with Linear State-Space Layers", NeurIPS 2021.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..._checks import check_int, check_number


def hippo_legs(n: int, *, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """HiPPO-LegS (scaled Legendre): memory of the whole history with uniform weight.

    $A_{nk} = -\\sqrt{2n+1}\\sqrt{2k+1}$ for $n > k$, $-(n+1)$ for $n = k$, 0 above the
    diagonal; $B_n = \\sqrt{2n+1}$. Lower triangular: its eigenvalues are exactly $-1, \\dots, -N$.
    The LegS ODE is time-varying ($\\dot c = \\frac{1}{t}(A c + B u)$); LSSL uses this
    (A, B) as a time-invariant system with a learned step.

    Args:
        n: state size N >= 1.
        dtype: floating dtype (torch's default when `None`).

    Returns:
        `(A [N, N], B [N])`.
    """
    root = _sqrt_odd(n, dtype)
    a = -torch.tril(root[:, None] * root[None, :], diagonal=-1)
    a = a - torch.diag(torch.arange(1, n + 1, dtype=root.dtype))
    return a, root.clone()


def hippo_legt(n: int, window: float = 1.0, *, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """HiPPO-LegT (translated Legendre): memory of the last `window` time units.

    $A_{nk} = -\\frac{1}{\\theta}\\sqrt{2n+1}\\sqrt{2k+1}\\,(1 \\text{ if } n \\ge k \\text{ else } (-1)^{n-k})$,
    $B_n = \\frac{1}{\\theta}\\sqrt{2n+1}$, with window $\\theta$ = `window`. The state then
    holds the Legendre coefficients of $u$ on $[t - \\theta, t]$:
    $u(t - \\theta + s\\theta) \\approx \\sum_n c_n(t) \\sqrt{2n+1}\\, P_n(2s - 1)$ for $s \\in [0, 1]$
    ($s = 1$ is the present), i.e. $c_n(t) = \\frac{1}{\\theta}\\int_{t-\\theta}^{t} u(r) \\sqrt{2n+1}\\,
    P_n\\big(2\\tfrac{r - t}{\\theta} + 1\\big)\\, dr$. The ODE is approximate (it reconstructs
    $u(t - \\theta)$ from the state), so the error falls as N grows once the history from
    before the start has left the window (checked in `tests/core/test_linear.py`).

    Window convention: the LSSL reference code halves A and B "for timescale correctness",
    which is `window=2` here. A factor in the window only rescales the step, so when porting
    weights from that code, use `window=2` or halve the step.

    Args:
        n: state size N >= 1.
        window: the memory window $\\theta > 0$, in time units.
        dtype: floating dtype (torch's default when `None`).

    Returns:
        `(A [N, N], B [N])`.
    """
    check_number("window", window, 0.0, open_low=True)
    root = _sqrt_odd(n, dtype)
    index = torch.arange(n)
    sign = torch.where(index[:, None] >= index[None, :], 1.0, (-1.0) ** (index[:, None] - index[None, :]).float())
    a = -(root[:, None] * root[None, :]) * sign.to(root.dtype) / window
    return a, root / window


def hippo_lagt(n: int, beta: float = 1.0, *, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """HiPPO-LagT (translated Laguerre): memory with exponentially decaying weight.

    $A = \\frac{1}{2} I - L$ with L the lower-triangular matrix of ones (diagonal included), so
    every eigenvalue is $-\\frac{1}{2}$; $B = \\beta \\mathbf{1}$.

    Args:
        n: state size N >= 1.
        beta: input scale $\\beta$.
        dtype: floating dtype (torch's default when `None`).

    Returns:
        `(A [N, N], B [N])`.
    """
    dtype = dtype or torch.get_default_dtype()
    _check_size(n)
    a = 0.5 * torch.eye(n, dtype=dtype) - torch.tril(torch.ones(n, n, dtype=dtype))
    return a, torch.full((n,), float(beta), dtype=dtype)


HIPPO = {"legs": hippo_legs, "legt": hippo_legt, "lagt": hippo_lagt}


def _sqrt_odd(n: int, dtype: torch.dtype | None) -> Tensor:
    _check_size(n)
    return torch.sqrt(2 * torch.arange(n, dtype=dtype or torch.get_default_dtype()) + 1)


def _check_size(n: object) -> None:
    check_int("n", n)
