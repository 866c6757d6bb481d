"""A diagonal state-space layer (S4D): decaying complex modes, ZOH, Vandermonde kernel, FFT convolution.

Each channel runs N/2 complex modes $\\dot x_m = a_m x_m + u$ ($\\mathrm{Re}\\, a_m < 0$, kept so by
learning $\\log(-\\mathrm{Re}\\, a_m)$) read out by $y = 2\\,\\mathrm{Re}\\sum_m c_m x_m + D u$ (the
conjugate modes are implicit, so the output is real). Zero-order hold at the learned step
$\\Delta$ gives $\\bar a_m = e^{\\Delta a_m}$, $\\bar b_m = (e^{\\Delta a_m} - 1) / a_m$ and the kernel
$k_j = 2\\,\\mathrm{Re}\\sum_m c_m \\bar b_m \\bar a_m^{\\,j}$ (a Vandermonde product): memory decays
like $e^{-\\Delta j / 2}$, the baseline HOPE's flat memory is measured against.

Irregular steps: observation k of a sample holds its input over the gap $\\delta_k$ that ends at
it (`dt`), so zero-order hold at $\\Delta \\delta_k$ is exact there, and the per-step recurrence
$x_k = \\bar a_k x_{k-1} + \\bar b_k u_k$ runs as a parallel scan (`linear_recurrence`). A sample
whose gaps are all equal still runs as a convolution, with its own kernel; so does a batch whose
gaps are whole multiples of each sample's smallest one (dropped observations of a regular
sampler): each input is held over the lattice cells of its gap (`fill_lattice`), which is exact
under zero-order hold, and the outputs are read at the observations' cells.

Reference: Gu, Gupta, Goel & Ré, "On the Parameterization and Initialization of Diagonal State
Space Models", NeurIPS 2022.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..._checks import check_choice, check_int
from ...errors import InvalidInputError
from ._common import check_call, lattice_cells, pick_mode, register_log_dt, special_parameters
from .kernels import METHODS, diagonal_convolution, fill_lattice, linear_recurrence, vandermonde_kernel

INITS = ("lin", "inv")


def s4d_init(modes: int, init: str = "lin", *, dtype: torch.dtype | None = None) -> Tensor:
    """Initial diagonal state matrix of S4D, half of the conjugate pairs.

    S4D-Lin: $a_m = -\\tfrac12 + i\\pi m$. S4D-Inv: $a_m = -\\tfrac12 + i\\frac{N}{\\pi}\\big(\\frac{N}{2m+1} - 1\\big)$
    with $N = 2 \\cdot$ `modes`, for $m = 0, \\dots,$ `modes` $- 1$.

    Args:
        modes: number of complex modes N/2 >= 1.
        init: "lin" or "inv".
        dtype: real dtype of the parts (torch's default when `None`).

    Returns:
        `[modes]` complex eigenvalues.

    Raises:
        InvalidInputError: on a bad `modes` or `init`.
    """
    check_int("modes", modes)
    check_choice("init", init, INITS)
    m = torch.arange(modes, dtype=dtype or torch.get_default_dtype())
    state = 2 * modes
    imag = math.pi * m if init == "lin" else state / math.pi * (state / (2 * m + 1) - 1)
    return torch.complex(torch.full_like(m, -0.5), imag)


class S4D(nn.Module):
    """Diagonal SSM layer (S4D) with zero-order hold and a causal FFT convolution.

    Args:
        d_model: channels H.
        d_state: state size N (even); N/2 complex modes per channel.
        init: "lin" (S4D-Lin) or "inv" (S4D-Inv) imaginary parts.
        dt_min: smallest initial step; steps are drawn log-uniform in `[dt_min, dt_max]`.
        dt_max: largest initial step.
        learn_dt: learn the log-steps (True) or keep them fixed (a buffer).
        recurrence: how the per-step recurrence runs: `"scan"` (parallel, log-depth) or
            `"sequential"` (the reference loop); see `linear_recurrence`.

    Raises:
        InvalidInputError: on a bad size, init, step range or recurrence.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        *,
        init: str = "lin",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        learn_dt: bool = True,
        recurrence: str = "scan",
    ) -> None:
        super().__init__()
        self.recurrence = check_choice("recurrence", recurrence, METHODS)
        check_int("d_model", d_model)
        if check_int("d_state", d_state, 2) % 2:
            raise InvalidInputError(f"`d_state` must be an even int >= 2; got {d_state!r}")
        a = s4d_init(d_state // 2, init).expand(d_model, -1)
        register_log_dt(self, d_model, dt_min, dt_max, learn_dt)
        self.log_decay = nn.Parameter(torch.log(-a.real).clone())  # [H, N/2]: Re a = -exp(log_decay)
        self.frequency = nn.Parameter(a.imag.clone())  # [H, N/2]
        self.c = nn.Parameter(torch.randn(d_model, d_state // 2, 2) * math.sqrt(0.5))  # complex N(0, 1)
        self.d = nn.Parameter(torch.randn(d_model))

    def special_parameters(self) -> dict[str, list[nn.Parameter]]:
        """The eigenvalues (`"ssm"`) and a learned log-step (`"dt"`), for
        [`param_groups`][neuralct.models.ssm.deep.param_groups]: their own rates, no weight decay."""
        return special_parameters(self, [self.log_decay, self.frequency])

    def discretize(self, steps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Zero-order hold at `steps` `[..., H]` (default: the learned $\\Delta$ `[H]`):
        `(a_bar [..., H, N/2], b_bar [..., H, N/2], c [H, N/2])`, all complex."""
        a = torch.complex(-self.log_decay.exp(), self.frequency)
        step = (self.log_dt.exp() if steps is None else steps)[..., None] * a
        a_bar = torch.polar(step.real.exp(), step.imag)  # e^step, about twice as fast as a complex exp on CPU
        return a_bar, (a_bar - 1) / a, torch.view_as_complex(self.c)

    def kernel(self, length: int) -> Tensor:
        """`[H, L]` real impulse response, lag 0 first: $k_j = 2\\,\\mathrm{Re}\\sum_m c_m \\bar b_m \\bar a_m^j$."""
        return 2 * vandermonde_kernel(*self._modes(None), length).real

    def forward(self, u: Tensor, *, dt: Tensor | None = None, mode: str = "auto") -> Tensor:
        """`[B, L, H] -> [B, L, H]`: the SSM's output plus the skip term $D u$.

        Args:
            u: `[B, L, H]` inputs; `u[:, k]` is held over the gap that ends at observation k.
            dt: `[B, L]` gaps $\\delta_k$ in units of the learned step (`None`: all ones); the
                step of channel h at observation k is $\\Delta_h \\delta_k$.
            mode: `"auto"` (a convolution when every sample's gaps are equal or whole
                multiples of its smallest gap, no more than `LATTICE_GROWTH` x L cells in all,
                else the recurrence), `"conv"` or `"recurrent"`.

        Raises:
            InvalidInputError: if a shape, a gap or the mode is wrong.
        """
        check_call(u, self.d.shape[0], dt, mode)
        route, spacing = pick_mode(dt, mode)
        lattice = lattice_cells(dt) if route == "recurrent" and mode == "auto" and dt is not None else None
        if route == "conv":
            modes = self._modes(None if spacing is None else spacing[:, None])
            y = diagonal_convolution(u.transpose(1, 2), *modes, conjugate_pairs=True)
        elif lattice is not None:
            y = self._on_lattice(u, *lattice)
        else:
            y = self._recurrence(u, dt)
        return y.transpose(1, 2) + self.d * u

    def unroll(self, u: Tensor) -> Tensor:
        """The same layer as the recurrence $x_k = \\bar a x_{k-1} + \\bar b u_k$, $y_k = 2\\mathrm{Re}(c x_k) + D u_k$.

        Args:
            u: `[B, L, H]` inputs.

        Returns:
            `[B, L, H]` outputs, equal to `forward(u)` to rounding.
        """
        return self(u, mode="recurrent")

    def _on_lattice(self, u: Tensor, spacing: Tensor, cells: Tensor) -> Tensor:
        """`[B, H, L]` SSM outputs by one convolution over the lattice (`spacing` `[1]` or `[B]`, `cells` `[B, L]`)."""
        held, ends = fill_lattice(u, cells)
        y = diagonal_convolution(held.transpose(1, 2), *self._modes(spacing[:, None]), conjugate_pairs=True)
        return y.gather(2, ends[:, None].expand(-1, y.shape[1], -1))

    def _recurrence(self, u: Tensor, dt: Tensor | None) -> Tensor:
        """`[B, H, L]` SSM outputs by the per-step recurrence over the gaps `dt` `[B, L]` (`None`: ones)."""
        steps = self.log_dt.exp() * (u.new_ones(u.shape[:2]) if dt is None else dt)[..., None]  # [B, L, H]
        a_bar, b_bar, c = self.discretize(steps)  # [B, L, H, N/2]
        inputs = (b_bar * u[..., None]).transpose(1, 2)  # [B, H, L, N/2]: the scan runs along L
        x = linear_recurrence(a_bar.transpose(1, 2), inputs, method=self.recurrence)
        return 2 * (c[:, None] * x).sum(-1).real

    def _modes(self, scale: Tensor | None) -> tuple[Tensor, Tensor]:
        """`(log a_bar, c b_bar)` `[..., H, N/2]` at the learned steps times `scale` `[..., 1]` (the
        principal logarithm: the phase of $\\bar a$ in $(-\\pi, \\pi]$, so that its powers stay accurate)."""
        a_bar, b_bar, c = self.discretize(None if scale is None else self.log_dt.exp() * scale)
        return a_bar.log(), c * b_bar
