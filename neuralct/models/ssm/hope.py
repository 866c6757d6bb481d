"""HOPE: a state-space layer parameterised by its Markov parameters (its Hankel operator).

Each channel holds an impulse response $h_1, \\dots, h_n$ (the entries of the Hankel matrix
$H_{ij} = h_{i+j-1}$) instead of matrices $(A, B, C)$. The discrete FIR filter
$G(w) = \\sum_{j=1}^{n} h_j w^{-j}$ is read as a continuous system by the inverse bilinear
transform at step 1 and re-discretised by the bilinear transform at the channel's own step
$\\Delta$ (learned in log space). The two maps compose to the Möbius map of the unit circle

$w(z) = \\frac{(1 + \\Delta) z + \\Delta - 1}{(\\Delta - 1) z + \\Delta + 1}$,

so the layer's transfer function at the FFT points $z_l = e^{2\\pi i l / P}$ is
$\\hat K_l = \\sum_{j=1}^n h_j\\, w(z_l)^{-j}$: the FIR transfer function sampled at non-uniform
points. Since $|w(z_l)| = 1$, $\\hat K$ is $\\sqrt{n}$-Lipschitz in $h$ whatever its value.

Indexing: kernel lag $j$ multiplies $u_{t-j}$. At $\\Delta = 1$ the map is the identity and the
kernel is exactly $(0, h_1, \\dots, h_n, 0, \\dots)$: lag 0 (the feed-through) is zero and the
memory is flat up to lag n and exactly zero after.

Reference: Yu, Mahoney & Erichson, "There is HOPE to Avoid HiPPOs for Long-memory State Space
Models", ICLR 2025 (arXiv 2405.13975).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..._checks import check_choice, check_int, check_sizes, describe
from ...errors import InvalidInputError
from ...solvers.linear.discretize import gbt
from ...terms.linear import LinearTerm
from ._common import check_call, pick_mode, register_log_dt, special_parameters
from .kernels import causal_convolution, linear_recurrence, power_kernel

MODES = ("causal", "bidirectional")


def mobius(z: Tensor, dt: Tensor) -> Tensor:
    """The Möbius map $w(z) = ((1+\\Delta) z + \\Delta - 1) / ((\\Delta - 1) z + \\Delta + 1)$.

    It is the bilinear transform at step $\\Delta$ followed by the inverse bilinear transform at
    step 1; for $\\Delta > 0$ it maps the unit circle onto itself, and it is the identity at 1.

    Args:
        z: complex points, broadcastable with `dt`.
        dt: real steps $\\Delta > 0$.

    Returns:
        The complex $w(z)$, over the broadcast shape.
    """
    return ((1 + dt) * z + dt - 1) / ((dt - 1) * z + dt + 1)


def hope_transfer(markov: Tensor, dt: Tensor, points: int, *, onesided: bool = False) -> Tensor:
    """HOPE's transfer function $\\hat K_l = \\sum_{j=1}^n h_j\\, w(z_l)^{-j}$ at $z_l = e^{2\\pi i l/P}$.

    Args:
        markov: `[C, n]` Markov parameters $h_1, \\dots, h_n$ per channel, real or complex.
        dt: `[C]` steps $\\Delta > 0$, real.
        points: the number P of points on the unit circle, >= 1.
        onesided: only $l = 0, \\dots, \\lfloor P/2 \\rfloor$, the half `torch.fft.irfft` needs; the
            rest are their conjugates when `markov` is real (the Möbius map has real coefficients).

    Returns:
        `[C, P]` (or `[C, P // 2 + 1]`) complex $\\hat K$; its inverse FFT is the impulse response
        aliased with period P.

    Raises:
        InvalidInputError: on a bad shape, a step <= 0, or a bad `points`.
    """
    if not isinstance(markov, Tensor) or markov.ndim != 2:
        raise InvalidInputError(f"`markov` must be a tensor [C, n]; got {describe(markov)}")
    if not isinstance(dt, Tensor) or tuple(dt.shape) != markov.shape[:1] or not bool((dt > 0).all()):
        raise InvalidInputError(f"`dt` must be a tensor [{markov.shape[0]}] of steps > 0; got {describe(dt)}")
    check_int("points", points)
    real, imag = (markov.real, markov.imag) if markov.is_complex() else (markov, torch.zeros_like(markov))
    index = torch.arange(points // 2 + 1 if onesided else points, dtype=real.dtype, device=real.device)
    z = torch.exp(2j * math.pi * index / points)
    angle = torch.angle(mobius(z, dt.to(real.dtype)[:, None]))  # [C, P]; |w| = 1, so w^-j = e^{-ij angle}
    phase = angle[..., None] * torch.arange(1, markov.shape[1] + 1, dtype=real.dtype, device=real.device)
    cos, sin = phase.cos(), phase.sin()  # [C, P, n]; real products are faster than complex ones
    return torch.complex(
        torch.einsum("cpn,cn->cp", cos, real) + torch.einsum("cpn,cn->cp", sin, imag),
        torch.einsum("cpn,cn->cp", cos, imag) - torch.einsum("cpn,cn->cp", sin, real),
    )


def fir_realization(markov: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Continuous-time matrices of the FIR filter $\\sum_j h_j w^{-j}$, by the inverse bilinear at step 1.

    The discrete realization is the shift register $A_d = S$ (ones below the diagonal),
    $B_d = e_1$, $C_d = h$, $D_d = 0$. With $P = (I + S)^{-1}$ (entries $(-1)^{i-k}$ on and
    below the diagonal), the inverse bilinear transform gives, in closed form,
    $A_c = 2(S - I)(S + I)^{-1} = 2I - 4P$, $B_c = 4P^2 e_1$ (entries $4(-1)^{i}(i+1)$),
    $C_c = h$ and $D_c = G(-1) = \\sum_j (-1)^j h_j$. $A_c$ has the single eigenvalue $-2$ (one
    Jordan block), so the bilinear transform at step $\\Delta$ has the pole $(1-\\Delta)/(1+\\Delta)$:
    0 at $\\Delta = 1$, where the system is the FIR filter again.

    Args:
        markov: `[C, n]` real Markov parameters.

    Returns:
        `(A_c [n, n], B_c [n], C_c [C, n], D_c [C])` of $\\dot x = A_c x + B_c u$, $y = C_c x + D_c u$.

    Raises:
        InvalidInputError: if `markov` is not a real tensor `[C, n]`.
    """
    if not isinstance(markov, Tensor) or markov.ndim != 2 or markov.is_complex():
        raise InvalidInputError(f"`markov` must be a real tensor [C, n]; got {describe(markov)}")
    n = markov.shape[1]
    index = torch.arange(n, device=markov.device)
    gap = index[:, None] - index[None, :]
    inverse = torch.where(gap >= 0, 1.0 - 2.0 * (gap % 2), 0.0).to(markov.dtype)  # (I + S)^-1
    a = 2.0 * torch.eye(n, dtype=markov.dtype, device=markov.device) - 4.0 * inverse
    b = 4.0 * (1.0 - 2.0 * (index % 2)).to(markov.dtype) * (index + 1).to(markov.dtype)
    d = markov @ (1.0 - 2.0 * ((index + 1) % 2)).to(markov.dtype)
    return a, b, markov, d


class HOPE(nn.Module):
    """HOPE layer: per-channel Markov parameters, Möbius-resampled transfer function, FFT convolution.

    `mode="causal"` (the default) evaluates $\\hat K$ on the 2L-point grid, takes the real part of
    its inverse FFT, keeps lags 0 to L - 1 and convolves with the zero-padded input, so the output
    at t depends on inputs up to t only. The Markov parameters are then real `[H, n]`: $\\hat K$ at
    conjugate points is conjugate (the Möbius map has real coefficients), so an imaginary part
    would vanish from the real output.

    `mode="bidirectional"` is the reference code's kernel: complex Markov parameters and steps for
    2H channels, each evaluated at L/2 points; the first H and the flipped last H are concatenated
    in the frequency domain, and the convolution is circular (no padding), real part taken. The
    output then depends on the whole sequence (and L must be even).

    Args:
        d_model: channels H.
        n: Markov parameters per channel (the memory length at $\\Delta = 1$).
        mode: "causal" or "bidirectional".
        dt_min: smallest initial step; steps are drawn log-uniform in `[dt_min, dt_max]`.
        dt_max: largest initial step.
        learn_dt: learn the log-steps (True) or keep them fixed (a buffer).

    Raises:
        InvalidInputError: on a bad size, mode or step range.
    """

    def __init__(
        self,
        d_model: int,
        n: int = 64,
        *,
        mode: str = "causal",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        learn_dt: bool = True,
    ) -> None:
        super().__init__()
        check_sizes(d_model=d_model, n=n)
        self.mode = check_choice("mode", mode, MODES)
        channels = d_model if mode == "causal" else 2 * d_model
        register_log_dt(self, channels, dt_min, dt_max, learn_dt)
        if mode == "causal":
            self.markov = nn.Parameter(torch.randn(channels, n) / (4 * math.sqrt(n)))
        else:  # complex, stored as (real, imaginary) pairs for optimisers
            self.markov = nn.Parameter(torch.randn(channels, n, 2) / (4 * math.sqrt(n)))
        self.d = nn.Parameter(torch.randn(d_model))

    def markov_parameters(self) -> Tensor:
        """`[H, n]` real (causal) or `[2H, n]` complex (bidirectional) $h_1, \\dots, h_n$."""
        return self.markov if self.mode == "causal" else torch.view_as_complex(self.markov)

    def kernel(self, length: int) -> Tensor:
        """`[H, L]` real causal impulse response, lag 0 first (lags >= 2L alias into it)."""
        self._require_causal("kernel")
        transfer = hope_transfer(self.markov, self.log_dt.exp(), 2 * length, onesided=True)
        return torch.fft.irfft(transfer, n=2 * length, dim=-1)[:, :length]

    def forward(self, u: Tensor, *, dt: Tensor | None = None, mode: str = "auto") -> Tensor:
        """`[B, L, H] -> [B, L, H]`: the convolution (or recurrence) plus the skip term $D u$.

        Without `dt` the causal layer convolves with the paper's kernel (the transfer function
        sampled at 2L points, so lags beyond 2L alias into it). With `dt` it runs the
        continuous-time system of `realization` at each sample's own gaps, HOPE's own rule step
        by step: the bilinear transform at $\\Delta_h \\delta_k$ with the input's trapezoidal
        average $(u_{k-1} + u_k)/2$ ($u_{-1} = 0$), i.e. the linear path through the samples. A
        sample whose gaps are all equal runs as a convolution with the system's exact (unaliased)
        impulse response; others run the recurrence, whose transition
        $\\bar A = (I + \\rho S)^{-1}(S + \\rho I)$, $\\rho = (1 - \\delta)/(1 + \\delta)$ ($S$ the
        shift) is applied in O(n) by a scan along the state index: $A_c$ is one Jordan block, so
        no diagonal form exists to scan over time.

        Args:
            u: `[B, L, H]` inputs.
            dt: `[B, L]` gaps in units of the learned step (causal mode only), or `None`.
            mode: `"auto"`, `"conv"` or `"recurrent"` (`"recurrent"` without `dt`: unit gaps).

        Raises:
            InvalidInputError: on a bad shape, gap or mode; `dt` or `mode` in bidirectional
                mode; an odd L in bidirectional mode.
        """
        width = self.d.shape[0]
        check_call(u, width, dt, mode)
        length = u.shape[1]
        if self.mode == "bidirectional":
            if dt is not None or mode != "auto":
                raise InvalidInputError("`dt` and `mode` need the causal layer; this one is 'bidirectional'")
            return self._bidirectional(u)
        if dt is None and mode != "recurrent":
            return causal_convolution(u.transpose(1, 2), self.kernel(length)).transpose(1, 2) + self.d * u
        dt = u.new_ones(u.shape[:2]) if dt is None else dt
        route, spacing = pick_mode(dt, mode)
        a_c, b_c, c, d = fir_realization(self.markov)
        average = (u + nn.functional.pad(u[:, :-1], (0, 0, 1, 0))) / 2  # [B, L, H]: (u_{k-1} + u_k) / 2
        if route == "conv":
            a_bar, b_bar = gbt(a_c, b_c, spacing[:, None] * self.log_dt.exp(), 0.5)  # [B or 1, H, n, n], [.., n]
            rows = c[:, None, :].expand(*a_bar.shape[:-2], 1, -1)  # krylov broadcasts only the columns
            k = power_kernel(a_bar, rows, b_bar[..., None], length)[..., 0, 0, :]  # [B or 1, H, L]
            y = causal_convolution(average.transpose(1, 2), k).transpose(1, 2)
        else:
            y = _trapezoid_recurrence(average, dt[..., None] * self.log_dt.exp(), c)
        return y + (d + self.d) * u

    def _bidirectional(self, u: Tensor) -> Tensor:
        width, length = self.d.shape[0], u.shape[1]
        if length % 2:
            raise InvalidInputError(f"`u` must have an even length L in bidirectional mode; got L = {length}")
        half = hope_transfer(self.markov_parameters(), self.log_dt.exp(), length // 2)
        transfer = torch.cat([half[:width], half[width:].flip(-1)], dim=-1)  # [H, L]
        y = torch.fft.ifft(torch.fft.fft(u, dim=1) * transfer.transpose(0, 1), dim=1).real
        return y + self.d * u

    def special_parameters(self) -> dict[str, list[nn.Parameter]]:
        """The Markov parameters (`"ssm"`) and a learned log-step (`"dt"`), for
        [`param_groups`][neuralct.models.ssm.deep.param_groups]: their own rates, no weight decay."""
        return special_parameters(self, [self.markov])

    def realization(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """State-space matrices of the causal layer, with one time unit per sample.

        Channel h is [`fir_realization`][neuralct.models.ssm.hope.fir_realization] with time
        scaled by its step: $A = \\Delta_h A_c$, $B = \\Delta_h B_c$, $C = h$, $D = D_c + D_{skip}$.

        Returns:
            `(A [H, n, n], B [H, n], C [H, n], D [H])`.
        """
        self._require_causal("realization")
        a, b, c, d = fir_realization(self.markov)
        dt = self.log_dt.exp()
        return dt[:, None, None] * a, dt[:, None] * b, c, d + self.d

    def linear_term(self, path: Any) -> LinearTerm:
        """The causal layer as a [`LinearTerm`][neuralct.terms.linear.LinearTerm] driven by `path`.

        The term is the realization (one time unit per sample) with the readout $y = C x + D u$
        (M = 1 output per channel), so any solver applies, on any grid. The bilinear rule with
        the input read at each step's midpoint (`GBT(0.5)`) on a `LinearPath` through the
        samples, stepping knot to knot from zero state one time unit before the first sample
        (input 0 there), reproduces `forward` on the unit grid up to the kernel's aliasing
        beyond lag 2L: the midpoint of a linear piece is the trapezoidal average of its ends.

        Args:
            path: the input with H channels, `evaluate(t)` `[B]` -> `[B, H]`.

        Returns:
            `LinearTerm` with `a` `[H, n, n]`, `b` `[H, n]`, `c` `[H, 1, n]`, `d` `[H, 1]`.
        """
        a, b, c, d = self.realization()
        return LinearTerm(a, b, path, c=c[:, None, :], d=d[:, None])

    def _require_causal(self, what: str) -> None:
        if self.mode != "causal":
            raise InvalidInputError(f"`mode` must be 'causal' for the {what}; got {self.mode!r}")


def _trapezoid_recurrence(average: Tensor, steps: Tensor, c: Tensor) -> Tensor:
    """`[B, L, H]` $C x_k$ of $x_k = \\bar A_k x_{k-1} + \\bar B_k \\bar u_k$, the bilinear transform of
    `fir_realization` at `steps` `[B, L, H]`, from the averaged inputs `average` `[B, L, H]`.

    In closed form (all matrices are functions of the shift S), with $\\rho = (1-\\delta)/(1+\\delta)$:
    $(I + \\rho S)\\, x_k = (S + \\rho I)\\, x_{k-1} + \\frac{4\\delta}{1+\\delta}\\, \\bar u_k\\, s$, $s_i = (-1)^i$.
    """
    rho, gain = (1 - steps) / (1 + steps), 4 * steps / (1 + steps)
    signs = 1.0 - 2.0 * (torch.arange(c.shape[-1], device=c.device) % 2).to(c.dtype)
    x = average.new_zeros(*average.shape[::2], c.shape[-1])  # [B, H, n]
    outputs = []
    for k in range(average.shape[1]):
        r = rho[:, k, :, None]
        w = nn.functional.pad(x[..., :-1], (1, 0)) + r * x + (gain[:, k] * average[:, k])[..., None] * signs
        x = linear_recurrence(-r[..., None], w[..., None]).squeeze(-1)  # (I + rho S)^-1 w along the state index
        outputs.append((c * x).sum(-1))
    return torch.stack(outputs, dim=1)
