"""Kernels shared by the state-space layers: Krylov powers, causal FFT convolution, the diagonal scan.

A diagonal system $h_k = \\bar a_k h_{k-1} + \\bar b_k u_k$ runs in one of two ways:

* uniform grid (the same $\\bar a$ at every step): `diagonal_convolution`, the Vandermonde
  kernel $\\sum_m c_m \\bar a_m^j$ applied by one causal FFT convolution;
* a step of its own at every observation (irregular series): `linear_recurrence`, a log-depth
  parallel scan over the pairs $(\\bar a_k, \\bar b_k u_k)$.

Both give the same states on a uniform grid (tested). Samples of different lengths in one batch
are the caller's to pad: $\\bar a = 1$, $\\bar b u = 0$ past a sample's end keeps its last state,
so the state at the padded end is the state at its last observation.

References: Gu et al., "Combining Recurrent, Convolutional, and Continuous-time Models with
Linear State-Space Layers", NeurIPS 2021, Sec. 3.1 and App. C; Blelloch, "Prefix Sums and Their
Applications", CMU-CS-90-190, 1990; Smith, Warrington & Linderman, "Simplified State Space Layers
for Sequence Modeling" (S5), ICLR 2023, Sec. 3.3 (the scan for diagonal linear recurrences).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..._checks import check_choice, describe
from ...errors import InvalidInputError

METHODS = ("scan", "sequential")


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
        u: `[..., L]` signals, real or complex.
        k: `[..., L]` kernels (broadcast against `u`), real or complex.

    Returns:
        `[..., L]` the causal (not circular) convolution, complex if either input is.
    """
    length = u.shape[-1]
    if u.is_complex() or k.is_complex():
        spectrum = torch.fft.fft(u, n=2 * length) * torch.fft.fft(k, n=2 * length)
        return torch.fft.ifft(spectrum, n=2 * length)[..., :length]
    spectrum = torch.fft.rfft(u, n=2 * length) * torch.fft.rfft(k, n=2 * length)
    return torch.fft.irfft(spectrum, n=2 * length)[..., :length]


def vandermonde_kernel(log_a: Tensor, c: Tensor, length: int) -> Tensor:
    """$K_j = \\sum_m c_m a_m^j$ for $j < L$, with $a = e^{\\log a}$: the kernel of diagonal systems, by one matmul.

    Baby step, giant step: with $s = \\lceil \\sqrt L \\rceil$ and $j = i + s k$,
    $K_j = \\sum_m (c_m a_m^i)(a_m^{s k})$, the product of a `[s, N]` and a `[N, L / s]` table of
    powers. Each power is taken directly as $e^{j \\log a}$, so the cost is one batched complex
    matmul per system and the memory O(N sqrt L) for the tables (the full `[N, L]` table of
    powers, built and differentiated, was the dominant cost of an S4D layer at L = 1460).

    Args:
        log_a: `[..., N]` complex logarithms of the diagonal transitions (e.g. $\\Delta a$ under
            zero-order hold; a negative real transition $a$ has $\\log a = \\log |a| + i\\pi$).
        c: `[..., N]` weights (broadcast against `log_a`).
        length: L >= 1.

    Returns:
        `[..., L]` complex kernel.
    """
    inner = math.isqrt(length - 1) + 1
    outer = -(-length // inner)
    steps = torch.arange(inner, dtype=log_a.real.dtype, device=log_a.device)
    baby = _exp_times(log_a, steps)  # [..., N, s]: a^i
    giant = _exp_times(log_a, inner * torch.arange(outer, dtype=steps.dtype, device=steps.device))  # a^(s k)
    table = (c.unsqueeze(-1) * baby).mT @ giant  # [..., s, L / s]: entry (i, k) is K at i + s k
    return table.mT.flatten(-2)[..., :length]


def _exp_times(log_a: Tensor, exponents: Tensor) -> Tensor:
    """`[..., N, J]` $e^{j \\log a}$ for each of the `[J]` real `exponents` (by polar: twice as fast
    as a complex exp on CPU)."""
    power = log_a.unsqueeze(-1) * exponents
    return torch.polar(power.real.exp(), power.imag)


def diagonal_convolution(u: Tensor, log_a: Tensor, c: Tensor, *, conjugate_pairs: bool = False) -> Tensor:
    """Readout of diagonal systems on a uniform grid: kernel $K_j = \\sum_m c_m a_m^j$, then one FFT convolution.

    With every mode driven by the same input, $h_{k,m} = a_m h_{k-1,m} + u_k$ from $h_{-1} = 0$,
    this is $y_k = \\sum_m c_m h_{k,m} = \\sum_{j \\le k} K_j u_{k-j}$, the same as reading out
    `linear_recurrence` with a constant $a = e^{\\log a}$ (fold the input matrix $\\bar b$ into `c`). With
    `conjugate_pairs`, each complex mode stands for itself and its conjugate, so the kernel is
    $2\\,\\mathrm{Re}\\,K$ and the output is real (S4D).

    Args:
        u: `[..., L]` inputs.
        log_a: `[..., N]` complex logarithms of the diagonal transitions (broadcast against `u`'s
            leading dims and `c`; see `vandermonde_kernel`).
        c: `[..., N]` readout weights.
        conjugate_pairs: return $2\\,\\mathrm{Re}$ of the complex modes' sum.

    Returns:
        `[..., L]` outputs.
    """
    kernel = vandermonde_kernel(log_a, c, u.shape[-1])
    return causal_convolution(u, 2 * kernel.real if conjugate_pairs else kernel)


def fill_lattice(u: Tensor, cells: Tensor) -> tuple[Tensor, Tensor]:
    """Hold each observation's input over the lattice cells of the gap that ends at it.

    Observation k of a sample covers `cells[:, k]` cells ending at cell `ends[:, k]`
    (the running sum of `cells`, less one), and every one of them gets `u[:, k]`. A diagonal
    system under zero-order hold then has, at `ends`, exactly the states of the per-step
    recurrence over the gaps ($\\bar a(m\\delta) = \\bar a(\\delta)^m$ and
    $\\bar b(m\\delta) = \\sum_{i<m} \\bar a(\\delta)^i\\, \\bar b(\\delta)$), and the uniform
    lattice runs as one FFT convolution. Cells past a row's last observation repeat it (padding,
    never read).

    Args:
        u: `[B, L, H]` inputs.
        cells: `[B, L]` int64 cells per gap, >= 1 (see `lattice_cells` in `neuralct.models.ssm._common`).

    Returns:
        `(held [B, M, H], ends [B, L])`, M the longest row's number of cells.
    """
    ends = cells.cumsum(dim=1) - 1
    grid = torch.arange(int(ends[:, -1].max()) + 1, device=u.device).expand(u.shape[0], -1).contiguous()
    source = torch.searchsorted(ends.contiguous(), grid).clamp_max(u.shape[1] - 1)
    return u.gather(1, source[..., None].expand(-1, -1, u.shape[-1])), ends


def linear_recurrence(a: Tensor, b: Tensor, h0: Tensor | None = None, *, method: str = "scan") -> Tensor:
    """$h_k = a_k h_{k-1} + b_k$ for $k = 0, \\dots, L-1$ from $h_{-1}$ = `h0` (zero if `None`), elementwise.

    `"scan"` is a parallel (associative) scan over the pairs $(a_k, b_k)$ with
    $(a_1, b_1) \\circ (a_2, b_2) = (a_1 a_2,\\ a_2 b_1 + b_2)$, in the odd-even form: each level
    combines neighbouring pairs into a problem of half the length, solves it, and fills in the
    even positions; $\\lceil \\log_2 L \\rceil$ levels of vectorised products, O(L) work in all.
    Its backward pass is the same scan run backwards (twice differentiable) and keeps only `a`
    and the states. It forms no cumulative products of `a` and divides by nothing, so decaying or
    vanishing `a` is safe (unlike $h = \\prod a \\cdot \\sum b / \\prod a$). `"sequential"` is the
    reference loop over the L steps. On a CPU both are bound by memory traffic once a step holds
    thousands of values, and the scan gains most where steps are small (forward + backward at
    L = 4096 on 2 cores: 14.8x the loop with 64 values per step, 1.3x with 2,048; see the
    benchmarks page).

    Samples of unequal lengths: pad with `a = 1`, `b = 0` past each end, which holds the state.

    Args:
        a: `[..., L, N]` transitions, real or complex.
        b: `[..., L, N]` inputs (broadcast against `a`).
        h0: `[..., N]` state before step 0 (broadcast against the leading dims), or `None` (zero).
        method: `"scan"` or `"sequential"`.

    Returns:
        `[..., L, N]` the states $h_0, \\dots, h_{L-1}$, in the promoted dtype of the inputs.

    Raises:
        InvalidInputError: on a non-tensor, fewer than two dims, shapes that do not broadcast, an
            empty L or an unknown method.
    """
    a, b = _check_recurrence(a, b, h0, method)
    if h0 is not None:  # h_0 = a_0 h0 + b_0: fold the initial state into the first input
        b = torch.cat([b[..., :1, :] + a[..., :1, :] * h0.unsqueeze(-2), b[..., 1:, :]], dim=-2)
    if method == "scan":
        return _Scan.apply(a, b)
    # unbind, not a[..., k, :]: indexing's backward would write a zero tensor of the full size per step.
    steps = zip(a.unbind(-2)[1:], b.unbind(-2)[1:])
    states = [b[..., 0, :]]
    for a_k, b_k in steps:
        states.append(a_k * states[-1] + b_k)
    return torch.stack(states, dim=-2)


class _Scan(torch.autograd.Function):
    """The scan with its own backward: the adjoint of a linear recurrence is the same recurrence run
    backwards, $\\lambda_k = g_k + a_{k+1}^* \\lambda_{k+1}$ (a gradient g of the states), so the
    backward pass is one more scan and keeps only `a` and the states, not every level's products."""

    @staticmethod
    def forward(a: Tensor, b: Tensor) -> Tensor:
        states = torch.empty_like(b)
        _odd_even_scan(a, b, states)
        return states

    @staticmethod
    def setup_context(ctx, inputs: tuple[Tensor, Tensor], output: Tensor) -> None:
        ctx.save_for_backward(inputs[0], output)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor]:
        a, states = ctx.saved_tensors
        # Reversed, step j carries a_{L-j}; step 0 starts from zero, so its transition (a_0 here) is never used.
        # conj_physical: a lazy conjugate would be resolved again at every level of the scan.
        backwards = torch.conj_physical(torch.cat([a[..., :1, :], a[..., 1:, :].flip(-2)], dim=-2))
        adjoint = _Scan.apply(backwards, grad.flip(-2)).flip(-2)
        if not ctx.needs_input_grad[0]:
            return None, adjoint
        before = torch.cat([torch.zeros_like(states[..., :1, :]), states[..., :-1, :]], dim=-2)
        return adjoint * torch.conj_physical(before), adjoint


def _odd_even_scan(a: Tensor, b: Tensor, out: Tensor) -> None:
    """Write the states of $h_k = a_k h_{k-1} + b_k$ from zero into `out`, all `[..., L, N]`.

    Combines the pairs (0, 1), (2, 3), ... into a problem of half the length whose states are
    the odd positions, solved in place into `out`'s odd slots (recursion depth $\\log_2 L$), then
    takes one step from each odd state to the even position after it. No autograd here: `_Scan`
    owns the backward pass, so the levels write into views of one output instead of stacking copies.
    """
    length = a.shape[-2]
    out[..., 0, :] = b[..., 0, :]
    if length == 1:
        return
    pairs = 2 * (length // 2)
    a_odd, b_odd = a[..., 1:pairs:2, :], b[..., 1:pairs:2, :]
    combined = torch.addcmul(b_odd, a_odd, b[..., 0:pairs:2, :])  # a_odd b_even + b_odd
    _odd_even_scan(a[..., 0:pairs:2, :] * a_odd, combined, out[..., 1:pairs:2, :])
    torch.addcmul(b[..., 2::2, :], a[..., 2::2, :], out[..., 1 : length - 1 : 2, :], out=out[..., 2::2, :])


def _check_recurrence(a: object, b: object, h0: object, method: str) -> tuple[Tensor, Tensor]:
    """`(a, b)` broadcast to one shape `[..., L, N]` and one dtype; raises on bad input."""
    check_choice("method", method, METHODS)
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, Tensor) or value.ndim < 2:
            raise InvalidInputError(f"`{name}` must be a tensor [..., L, N]; got {describe(value)}")
    if h0 is not None and not isinstance(h0, Tensor):
        raise InvalidInputError(f"`h0` must be a tensor [..., N] or None; got {describe(h0)}")
    try:
        shape = torch.broadcast_shapes(a.shape, b.shape)
        state = shape[:-2] + shape[-1:]
        fits = h0 is None or torch.broadcast_shapes(h0.shape, state) == state
    except RuntimeError:
        fits = False
    if not fits:
        shapes = ", ".join(f"{n} {None if v is None else tuple(v.shape)}" for n, v in (("a", a), ("b", b), ("h0", h0)))
        raise InvalidInputError(f"`a`, `b` [..., L, N] must broadcast, and `h0` to their [..., N]; got {shapes}")
    if shape[-2] < 1:
        raise InvalidInputError(f"`a` and `b` must have L >= 1 steps (dim -2); got shape {tuple(shape)}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    dtype = dtype if h0 is None else torch.promote_types(dtype, h0.dtype)
    return a.to(dtype).expand(shape), b.to(dtype).expand(shape)
