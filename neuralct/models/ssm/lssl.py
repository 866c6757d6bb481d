"""LSSL: a linear state-space layer, one continuous-time SISO system per feature.

Each feature h of the input `[B, L, H]` drives its own copy of $\\dot x = A x + B u$,
$y = C_h x + D_h u$ (state size N, M output channels), sampled with its own learned step
$\\Delta_h$. Discretized by the generalized bilinear transform (GBT, default $\\alpha = 1/2$) or
zero-order hold, the layer runs in two equivalent modes:

* convolution (uniform grids): $y = K * u + D u$ with the kernel
  $K = (C\\bar B, C\\bar A\\bar B, \\dots, C\\bar A^{L-1}\\bar B)$ built from Krylov sequences by
  repeated squaring and applied by a causal FFT convolution; a nonzero initial state adds
  $C \\bar A^{k+1} x_0$, built the same way;
* recurrence: $x_k = \\bar A_k x_{k-1} + \\bar B_k u_k$, which also takes a different step at
  every observation and per sample (irregular series).

Reference: Gu, Johnson, Goel, Saab, Dao, Rudra & Ré, "Combining Recurrent, Convolutional, and
Continuous-time Models with Linear State-Space Layers", NeurIPS 2021.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..._checks import check_choice, check_number, check_sizes, describe
from ...errors import InvalidInputError
from ...solvers.linear.discretize import gbt, zoh
from ._common import check_call, pick_mode, register_log_dt, special_parameters
from .hippo import HIPPO
from .kernels import causal_convolution, power_kernel

METHODS = ("gbt", "zoh")


class LSSL(nn.Module):
    """Linear state-space layer `[B, L, H] -> [B, L, H * M]` with learnable per-feature steps.

    A and B are shared by the H features (as in the reference code's `learn=1`); C `[H, M, N]`
    and D `[H, M]` are per feature, drawn from N(0, 1); $\\log \\Delta_h$ is drawn uniformly in
    $[\\log \\Delta_{min}, \\log \\Delta_{max}]$. With `learn=False` A and B are buffers (LSSL-f).

    **Steps.** The step of feature h at observation k is $\\Delta_h \\cdot$ `dt_scale` $\\cdot$
    `dt[b, k]`: `dt` is the time since the previous observation in units of the training grid
    (all ones on a uniform grid; for an irregular series, $t_k - t_{k-1}$ divided by the training
    spacing), so each feature's learned step is its timescale. `dt_scale = 1 / rate` resamples
    at test time: a signal sampled twice as densely runs with `dt_scale=0.5`.

    **Kernel cache.** In eval mode with autograd off, the convolution kernel is cached and
    reused while L, `dt_scale` and the parameters (tracked by their in-place version counters)
    stay the same; in training it is recomputed at every call.

    Args:
        d_model: features H.
        d_state: state size N.
        channels: output channels M per feature.
        a: a HiPPO measure name (`"legs"`, `"legt"`, `"lagt"`), `"random"` (entries
            N(0, 1/N) minus the identity, B ~ N(0, 1): an ablation), or an `[N, N]` matrix.
        b: `[N]` input vector; required when `a` is a matrix, else taken from the builder.
        learn: train A and B (LSSL) or freeze them (LSSL-f).
        learn_dt: train $\\log \\Delta$.
        dt_min: smallest initial step.
        dt_max: largest initial step.
        method: `"gbt"` or `"zoh"`.
        alpha: the GBT parameter in [0, 1] (0 forward Euler, 1/2 bilinear, 1 backward Euler).

    Raises:
        InvalidInputError: on a bad size, matrix, measure, step range or method.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 64,
        channels: int = 1,
        *,
        a: str | Tensor = "legs",
        b: Tensor | None = None,
        learn: bool = True,
        learn_dt: bool = True,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        method: str = "gbt",
        alpha: float = 0.5,
    ) -> None:
        super().__init__()
        check_sizes(d_model=d_model, d_state=d_state, channels=channels)
        check_choice("method", method, METHODS)
        self.method, self.alpha, self.d_output = method, check_number("alpha", alpha, 0.0, 1.0), d_model * channels
        a_matrix, b_vector = _state_matrices(a, b, d_state)
        self._register("a", a_matrix, learn)
        self._register("b", b_vector, learn)
        register_log_dt(self, d_model, dt_min, dt_max, learn_dt)
        self.c = nn.Parameter(torch.randn(d_model, channels, d_state))
        self.d = nn.Parameter(torch.randn(d_model, channels))
        self._cache: tuple[tuple, Tensor] | None = None

    @property
    def dt(self) -> Tensor:
        """`[H]` the learned steps $\\Delta_h = e^{\\log \\Delta_h} > 0$."""
        return self.log_dt.exp()

    def special_parameters(self) -> dict[str, list[nn.Parameter]]:
        """The parameters that take their own learning rate: `"ssm"` (A, B) and `"dt"` ($\\log \\Delta$)."""
        return special_parameters(self, [p for p in (self.a, self.b) if isinstance(p, nn.Parameter)])

    def discretize(self, steps: Tensor) -> tuple[Tensor, Tensor]:
        """`steps` `[..., H]` -> `(A_bar [..., H, N, N], B_bar [..., H, N])` by the layer's method."""
        if self.method == "zoh":
            return zoh(self.a, self.b, steps)
        return gbt(self.a, self.b, steps, self.alpha)

    def kernel(self, length: int, dt_scale: float = 1.0) -> Tensor:
        """`[H, M, L]` the convolution kernel $K_k = C \\bar A^k \\bar B$ on a uniform grid."""
        return self._kernel_at(self.dt * dt_scale, length)

    def forward(
        self,
        u: Tensor,
        *,
        dt: Tensor | None = None,
        dt_scale: float = 1.0,
        x0: Tensor | None = None,
        mode: str = "auto",
    ) -> Tensor:
        """Apply the layer.

        Args:
            u: `[B, L, H]` inputs.
            dt: `[B, L]` time since the previous observation, in units of the training grid
                (`None`: a uniform grid of ones). A sample whose gaps are all equal runs as a
                convolution at its own spacing; any other `dt` runs the recurrence.
            dt_scale: positive factor on every step (`1 / rate` for test-time resampling).
            x0: `[B, H, N]` state before the first observation (`None`: zero).
            mode: `"auto"` (convolution unless some sample's gaps vary), `"conv"` or `"recurrent"`.

        Returns:
            `[B, L, H * M]` outputs; channel m of feature h is at `h * M + m`.

        Raises:
            InvalidInputError: if a shape, step or mode is wrong.
        """
        self._check_call(u, dt, dt_scale, x0, mode)
        route, spacing = pick_mode(dt, mode)
        if route == "recurrent":
            y = self._recurrent(u, self.dt * dt_scale if dt is None else dt[..., None] * self.dt * dt_scale, x0)
        elif spacing is None:
            y = self._convolution(u, self._cached_kernel(u.shape[1], dt_scale), self.dt * dt_scale, x0)
        else:  # every sample uniform, each at its own spacing: one kernel per sample
            steps = spacing[:, None] * self.dt * dt_scale  # [B, H]
            y = self._convolution(u, self._kernel_at(steps, u.shape[1]), steps, x0)
        return (y + self.d * u[..., None]).flatten(-2)

    def _convolution(self, u: Tensor, k: Tensor, steps: Tensor, x0: Tensor | None) -> Tensor:
        """`[B, L, H, M]` from the kernel `k` `[(B,) H, M, L]` at `steps` `[(B,) H]`, plus $C \\bar A^{k+1} x_0$."""
        length = u.shape[1]
        y = causal_convolution(u.transpose(1, 2)[:, :, None, :], k).permute(0, 3, 1, 2)  # [B, L, H, M]
        if x0 is None:
            return y
        a_bar, _ = self.discretize(steps)
        first = a_bar @ x0[..., None]  # [B, H, N, 1]: A_bar x0
        if a_bar.ndim == 3:  # one A_bar for all samples: samples as columns, no copy of A_bar per sample
            return y + power_kernel(a_bar, self.c, first.squeeze(-1).permute(1, 2, 0), length).permute(2, 3, 0, 1)
        c = self.c.expand(*a_bar.shape[:-2], -1, -1)  # krylov broadcasts only the columns
        return y + power_kernel(a_bar, c, first, length).squeeze(-2).permute(0, 3, 1, 2)

    def _kernel_at(self, steps: Tensor, length: int) -> Tensor:
        """`[..., H, M, L]` the kernel $C \\bar A^k \\bar B$ at `steps` `[..., H]`."""
        a_bar, b_bar = self.discretize(steps)
        c = self.c.expand(*a_bar.shape[:-2], -1, -1)  # krylov broadcasts only the columns
        return power_kernel(a_bar, c, b_bar.unsqueeze(-1), length).squeeze(-2)

    def _cached_kernel(self, length: int, dt_scale: float) -> Tensor:
        if self.training or torch.is_grad_enabled():
            return self.kernel(length, dt_scale)
        key = (length, dt_scale, self.a.dtype, *(t._version for t in (self.a, self.b, self.log_dt, self.c)))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.kernel(length, dt_scale))
        return self._cache[1]

    def _recurrent(self, u: Tensor, steps: Tensor, x0: Tensor | None) -> Tensor:
        """`steps` `[H]` (uniform: discretized once) or `[B, L, H]` (discretized step by step)."""
        batch, length, width = u.shape
        x = u.new_zeros(batch, width, self.a.shape[-1]) if x0 is None else x0
        uniform = steps.ndim == 1
        a_bar, b_bar = self.discretize(steps) if uniform else (None, None)
        transition = "hnm,bhm->bhn" if uniform else "bhnm,bhm->bhn"  # einsum: no per-sample copy of A_bar
        outputs = []
        # unbind, not u[:, k]: the backward of L selections would write L full-size gradients
        per_step = steps.unbind(1) if not uniform else (None,) * length
        for u_k, step in zip(u.unbind(1), per_step):
            if step is not None:
                a_bar, b_bar = self.discretize(step)
            x = torch.einsum(transition, a_bar, x) + b_bar * u_k[..., None]
            outputs.append(torch.einsum("hmn,bhn->bhm", self.c, x))
        return torch.stack(outputs, dim=1)

    def _register(self, name: str, value: Tensor, learn: bool) -> None:
        if learn:
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    def _check_call(self, u: Tensor, dt: Tensor | None, dt_scale: float, x0: Tensor | None, mode: str) -> None:
        width, n = self.c.shape[0], self.c.shape[-1]
        check_call(u, width, dt, mode)
        check_number("dt_scale", dt_scale, 0.0, open_low=True)
        if x0 is not None and (not isinstance(x0, Tensor) or tuple(x0.shape) != (u.shape[0], width, n)):
            raise InvalidInputError(f"`x0` must be a tensor [B, H, N] = {(u.shape[0], width, n)}; got {describe(x0)}")


def _state_matrices(a: str | Tensor, b: Tensor | None, n: int) -> tuple[Tensor, Tensor]:
    """`(A [N, N], B [N])` from a HiPPO measure name, `"random"`, or a given matrix and vector."""
    if isinstance(a, Tensor):
        if tuple(a.shape) != (n, n):
            raise InvalidInputError(f"`a` must be a tensor [N, N] = {(n, n)}; got {tuple(a.shape)}")
        if not isinstance(b, Tensor) or tuple(b.shape) != (n,):
            raise InvalidInputError(f"`b` must be a tensor [N] = {(n,)} when `a` is a matrix; got {describe(b)}")
        return a.detach().clone(), b.detach().clone()
    if b is not None:
        raise InvalidInputError(f"`b` is taken from the builder when `a` is a name; got `a` = {a!r} and a `b`")
    if a == "random":
        return torch.randn(n, n) / math.sqrt(n) - torch.eye(n), torch.randn(n)
    if a not in HIPPO:
        raise InvalidInputError(f"`a` must be a tensor, 'random' or one of {tuple(HIPPO)}; got {a!r}")
    return HIPPO[a](n)
