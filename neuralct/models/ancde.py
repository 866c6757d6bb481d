"""Attentive neural CDEs (ANCDE): a bottom CDE computes an attention that reweights the control
of a top CDE.

With the control $X(t)$ (`[B, C']`, time as a channel by default):

- bottom CDE: $h(t) = h(t_0) + \\int f_\\theta(h)\\,dX$, $h(t_0) = \\mathrm{Linear}(X(t_0))$, $\\dim h = C'$;
- attention: $a = \\sigma(h)$ (soft, one weight per channel) or $a = \\sigma(\\mathrm{FC}(h))$
  (time-wise, one scalar per time);
- attended control: $Y = X \\odot a$, so
  $\\dot Y = \\dot X \\odot a + X \\odot a (1 - a) \\odot \\dot a_{pre}$ with $\\dot a_{pre} = \\dot h$
  (soft) or $W_{FC}\\,\\dot h$ (time-wise);
- top CDE: $z(t) = z(t_0) + \\int g_\\theta(z)\\,dY$, $z(t_0) = \\mathrm{Linear}(Y(t_0))$; the prediction
  is a linear map of $z$ at each sample's last observation.

Both CDEs are one ODE on the concatenated state $[h; z]$, so $a(t)$ and $\\dot h(t)$ are exact at
every solver stage and any solver (adaptive ones included) integrates the model.

Reference: Jhin, Shin, Hwang, Lee, Hwang & Park, "Attentive Neural Controlled Differential
Equations for Time-series Classification and Forecasting", ICDM 2021.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.controls import ControlPath
from ..data.series import IrregularBatch
from ..errors import InvalidInputError
from ..solution import Solution
from ..terms.base import AbstractDriftTerm
from ._checks import check_int
from .base import AbstractContinuousModel, SolveOptions, last_observed
from .ncde import CDEControl, FinalTanh, robust_options

ATTENTIONS = ("soft", "timewise")


class SoftAttention(nn.Module):
    """$a = \\sigma(h)$, one weight per control channel; $\\dot a = a (1 - a) \\odot \\dot h$."""

    def forward(self, h: Tensor) -> Tensor:
        """`[B, C']` -> `[B, C']`."""
        return torch.sigmoid(h)

    def rate(self, a: Tensor, h_rate: Tensor) -> Tensor:
        """$\\dot a$ `[B, C']` from $a$ and $\\dot h$ `[B, C']`."""
        return a * (1 - a) * h_rate


class TimewiseAttention(nn.Module):
    """$a = \\sigma(w^\\top h + b)$, one scalar per time; $\\dot a = a (1 - a)\\, w^\\top \\dot h$.

    Args:
        channels: control channels C' (the size of h).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, 1)

    def forward(self, h: Tensor) -> Tensor:
        """`[B, C']` -> `[B, 1]`."""
        return torch.sigmoid(self.fc(h))

    def rate(self, a: Tensor, h_rate: Tensor) -> Tensor:
        """$\\dot a$ `[B, 1]` from $a$ `[B, 1]` and $\\dot h$ `[B, C']` (the chain rule through FC)."""
        return a * (1 - a) * F.linear(h_rate, self.fc.weight)


class AttentiveTerm(AbstractDriftTerm):
    """The ANCDE as one ODE on $[h; z]$: $\\dot h = f(h)\\,\\dot X$, $\\dot z = g(z)\\,\\dot Y$.

    Args:
        bottom: $f$, `(t, h [B, C'], args) -> [B, C', C']`.
        attention: a `SoftAttention` or `TimewiseAttention`.
        top: $g$, `(t, z [B, H], args) -> [B, H, C']`.
        path: the control $X$ with C' channels.
    """

    def __init__(self, bottom: nn.Module, attention: nn.Module, top: nn.Module, path: ControlPath) -> None:
        super().__init__()
        self.bottom, self.attention, self.top, self.path = bottom, attention, top, path

    def attended(self, t: Tensor, h: Tensor, args: Any = None) -> tuple[Tensor, Tensor, Tensor]:
        """$(\\dot h, Y, \\dot Y)$ at times `t` `[B]` for bottom states `h` `[B, C']`, each `[B, C']`."""
        x, x_rate = self.path.evaluate(t).to(h.dtype), self.path.derivative(t).to(h.dtype)
        h_rate = torch.einsum("bij,bj->bi", self.bottom(t, h, args), x_rate)
        a = self.attention(h)
        return h_rate, x * a, x_rate * a + x * self.attention.rate(a, h_rate)

    def vector_field(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        """`t` `[B]`, $[h; z]$ `[B, C' + H]` -> $[\\dot h; \\dot z]$ `[B, C' + H]`."""
        h, z = y.split([self.path.channels, y.shape[-1] - self.path.channels], dim=-1)
        h_rate, _, y_rate = self.attended(t, h, args)
        z_rate = torch.einsum("bij,bj->bi", self.top(t, z, args), y_rate)
        return torch.cat([h_rate, z_rate], dim=-1)

    def jump_times(self, ts: Tensor) -> Tensor:
        """The control's knots (see `ControlPath.jump_times`)."""
        return self.path.jump_times()


class ANCDE(AbstractContinuousModel):
    """Attentive neural CDE: a bottom CDE's attention reweights the top CDE's control.

    **Numerics.** The defaults are those of [`NeuralCDE`][neuralct.models.ncde.NeuralCDE]
    (`Tsit5()`, `PIDController(rtol=1e-3, atol=1e-4)`); any `SolveOptions` works. The state is
    $[h; z]$ `[B, C' + H]`, so an adaptive solver controls the error of both CDEs.

    **Not offered.** The reference code solves the two CDEs one after the other and looks the
    attention up at index $\\lfloor t \\rfloor - 1$ (piecewise constant, assuming unit spacing),
    reads $\\dot h$ from a file by call count (misaligned with RK4's stages) and uses
    $\\dot X$ in place of $X$ in $\\dot Y$. Those are implementation artefacts, not the paper's
    equations, and they make the result depend on the solver's internals, so no
    reference-compatible mode is offered. Nor is the paper's hard attention: its straight-through
    binarisation has no derivative in time, so $\\dot Y$ is undefined.

    Args:
        channels: data channels C of the batches.
        hidden: state size H of the top CDE.
        outputs: predictions per sample O.
        attention: `"soft"` ($a = \\sigma(h)$ per channel) or `"timewise"` ($\\sigma(\\mathrm{FC}(h))$, a scalar).
        attention_hidden: units of each hidden layer of the bottom field $f_\\theta$.
        interpolation: the control path, as for `NeuralCDE` (`"limited_hermite"` by default).
        time_channel: prepend time as a channel of the control.
        count_channels: append cumulative observation counts.
        width: units of each hidden layer of the top field $g_\\theta$.
        depth: number of hidden layers of both fields.

    Raises:
        InvalidInputError: a bad size, attention or interpolation.
    """

    def __init__(
        self,
        channels: int,
        hidden: int,
        outputs: int,
        *,
        attention: str = "soft",
        attention_hidden: int = 32,
        interpolation: str = "limited_hermite",
        time_channel: bool = True,
        count_channels: bool = False,
        width: int = 64,
        depth: int = 2,
    ) -> None:
        super().__init__()
        for name, value in (("hidden", hidden), ("outputs", outputs), ("attention_hidden", attention_hidden)):
            check_int(name, value)
        if attention not in ATTENTIONS:
            raise InvalidInputError(f"`attention` must be one of {ATTENTIONS}; got {attention!r}")
        self.control = CDEControl(channels, interpolation, time_channel, count_channels)
        inputs = self.control.path_channels
        self.embed_bottom = nn.Linear(inputs, inputs)
        self.bottom = FinalTanh(inputs, inputs, attention_hidden, depth)
        self.attention = SoftAttention() if attention == "soft" else TimewiseAttention(inputs)
        self.embed_top = nn.Linear(inputs, hidden)
        self.top = FinalTanh(hidden, inputs, width, depth)
        self.head = nn.Linear(hidden, outputs)

    def default_solve_options(self) -> SolveOptions:
        """`Tsit5()` with `PIDController(rtol=1e-3, atol=1e-4)`."""
        return robust_options()

    def initial_state(self, batch: IrregularBatch) -> Tensor:
        """`[B, C' + H]` $[h(t_0); z(t_0)]$ with linear maps of $X(t_0)$ and $Y(t_0)$.

        The initial $z$ reads the attended control $Y(t_0) = X(t_0) \\odot a(h(t_0))$.
        """
        x = self.control.path(batch).evaluate(batch.times[:, 0]).to(self.embed_top.weight.dtype)
        h = self.embed_bottom(x)
        return torch.cat([h, self.embed_top(x * self.attention(h))], dim=-1)

    def term(self, batch: IrregularBatch) -> AttentiveTerm:
        """The joint $[h; z]$ term with `batch`'s control path."""
        return AttentiveTerm(self.bottom, self.attention, self.top, self.control.path(batch))

    def readout(self, solution: Solution, batch: IrregularBatch) -> Tensor:
        """`[B, O]` a linear map of $z$ at each sample's last observation."""
        return self.head(last_observed(solution.ys, batch)[:, self.control.path_channels :])


__all__ = ["ATTENTIONS", "ANCDE", "AttentiveTerm", "SoftAttention", "TimewiseAttention"]
