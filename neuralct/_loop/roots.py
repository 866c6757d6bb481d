"""Bracketed root finding on a batch, row by row: the Illinois method.

Each row brackets a sign change of a function of $\\theta \\in [0, 1]$ and shrinks its own
bracket; a row that has converged stays as it is while the others go on, so a row's root never
depends on its batch mates.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# Iterations after which a row stops even if its bracket is still wider than its tolerance (the
# Illinois method converges superlinearly: a smooth crossing needs about ten).
MAX_ITERATIONS = 64


def illinois(fn: Callable[[Tensor], Tensor], g_lo: Tensor, g_hi: Tensor, active: Tensor, tol: Tensor) -> Tensor:
    """`[B]` roots in `[0, 1]` of `fn` for the rows `active`, by the Illinois method (Dowell &
    Jarratt, "A modified regula falsi method for computing the root of an equation", BIT 11,
    1971): the secant through the bracket's ends, with the value kept at an end that survives
    twice running halved, so both ends close in. A secant point that falls outside the
    bracket (or is NaN) is replaced by the bisection point.

    Args:
        fn: `[B]` -> `[B]`, the function at one point of each row's bracket, row-wise.
        g_lo: `[B]` its values at 0 (non-zero in active rows).
        g_hi: `[B]` its values at 1, of the other sign than `g_lo` or zero (the root is then 1).
        active: `[B]` the rows to solve; the others return 1.
        tol: `[B]` the bracket width at which a row stops.

    Returns:
        `[B]` the middle of each row's final bracket (1 in inactive rows), in the dtype of `tol`.
    """
    ones = torch.ones_like(tol)
    hi = ones
    lo = torch.where(active & (g_hi != 0), torch.zeros_like(tol), ones)
    g_lo, g_hi = g_lo.to(tol.dtype), g_hi.to(tol.dtype)
    kept = torch.zeros_like(tol)  # +1: the last step moved `lo`, -1: it moved `hi`
    for _ in range(MAX_ITERATIONS):
        running = hi - lo > tol
        if not bool(running.any()):
            break
        theta = (lo * g_hi - hi * g_lo) / (g_hi - g_lo)
        theta = torch.where((theta > lo) & (theta < hi), theta, (lo + hi) / 2)
        g = fn(torch.where(running, theta, hi)).to(tol.dtype)
        hit = running & (g == 0)
        move_lo = running & ~hit & (torch.sign(g) == torch.sign(g_lo))
        move_hi = running & ~hit & ~move_lo
        g_hi = torch.where(move_lo & (kept > 0), g_hi / 2, g_hi)
        g_lo = torch.where(move_hi & (kept < 0), g_lo / 2, g_lo)
        lo, g_lo = torch.where(move_lo | hit, theta, lo), torch.where(move_lo, g, g_lo)
        hi, g_hi = torch.where(move_hi | hit, theta, hi), torch.where(move_hi, g, g_hi)
        kept = torch.where(move_lo, 1.0, torch.where(move_hi, -1.0, kept))
    return (lo + hi) / 2
