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

They are also one CDE driven by $X$ alone, once the state carries $x = X$ (the top field's
coefficient depends on $X$ itself): with $W = [x; h; z]$,

$$dW = F(W)\\,dX, \\qquad F(W) = \\begin{bmatrix} I \\\\ f_\\theta(h) \\\\
    g_\\theta(z)\\,\\big(\\mathrm{diag}(a) + \\mathrm{diag}(x)\\,\\sigma'(p)\\,\\partial p / \\partial X\\big)
    \\end{bmatrix},$$

since $dY = a \\odot dX + x \\odot da$ and $da = \\sigma'(p)\\,dp$ for the attention's
pre-activation $p$: $p = h$, $\\partial p / \\partial X = f_\\theta(h)$ (soft) or
$p = w_{FC}^\\top h + b$, $\\partial p / \\partial X = w_{FC}^\\top f_\\theta(h)$ (time-wise, where
$\\mathrm{diag}(a)$ is $a I$). `ANCDE` integrates this form (`AttentiveControlField`) under a
solver that takes `ControlTerm`s only, the log-ODE method
([`LogODE`][neuralct.models.log_ode.LogODE]), and the drift form under every other solver.

Reference: Jhin, Shin, Hwang, Lee, Hwang & Park, "Attentive Neural Controlled Differential
Equations for Time-series Classification and Forecasting", ICDM 2021.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_sizes
from ..data.controls import ControlPath
from ..data.series import IrregularBatch
from ..solution import Solution
from ..solvers.base import AbstractSolver
from ..terms.base import AbstractDriftTerm
from ..terms.control import ControlTerm
from .base import AbstractContinuousModel, SolveOptions, last_observed, solve_to_ends
from .ncde import CDEControl, FinalTanh, robust_options

ATTENTIONS = ("soft", "timewise")


class SoftAttention(nn.Module):
    """$a = \\sigma(h)$, one weight per control channel; $\\dot a = a (1 - a) \\odot \\dot h$."""

    def forward(self, h: Tensor) -> Tensor:
        """`[B, C']` -> `[B, C']`."""
        return torch.sigmoid(h)

    def rate(self, a: Tensor, h_rate: Tensor) -> Tensor:
        """$\\dot a$ `[B, ..., C']` from $a$ (broadcastable) and $\\dot h$ `[B, ..., C']`."""
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
        """$\\dot a$ `[B, ..., 1]` from $a$ (broadcastable) and $\\dot h$ `[B, ..., C']` (the chain
        rule through FC)."""
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


class AttentiveControlField(nn.Module):
    """The ANCDE as one CDE field on $W = [x; h; z]$: $F(W)$ of the module docstring, so that
    `ControlTerm(field, path)` with the ANCDE's control $X$ is the model.

    Args:
        bottom: $f$, `(t, h [B, C'], args) -> [B, C', C']`.
        attention: a `SoftAttention` or `TimewiseAttention`.
        top: $g$, `(t, z [B, H], args) -> [B, H, C']`.
        channels: control channels C'.
    """

    def __init__(self, bottom: nn.Module, attention: nn.Module, top: nn.Module, channels: int) -> None:
        super().__init__()
        self.bottom, self.attention, self.top, self.channels = bottom, attention, top, channels

    def forward(self, t: Tensor, w: Tensor, args: Any = None) -> Tensor:
        """`t` `[B]`, $[x; h; z]$ `[B, 2 C' + H]` -> $F(W)$ `[B, 2 C' + H, C']`."""
        x, h, z = w.split([self.channels, self.channels, w.shape[-1] - 2 * self.channels], dim=-1)
        h_gain = self.bottom(t, h, args)  # dh/dX
        a = self.attention(h)
        # `rate` maps the rate of h along each control channel at once: the rows of (dh/dX)^T.
        a_gain = self.attention.rate(a.unsqueeze(1), h_gain.transpose(-1, -2)).transpose(-1, -2)  # da/dX [B, A, C']
        identity = torch.eye(self.channels, dtype=w.dtype, device=w.device)
        y_gain = identity * a.unsqueeze(-1) + x.unsqueeze(-1) * a_gain  # dY/dX [B, C', C']
        top = torch.bmm(self.top(t, z, args), y_gain)
        return torch.cat([identity.expand(w.shape[0], -1, -1), h_gain, top], dim=1)


def takes_control_form(solver: AbstractSolver) -> bool:
    """Whether `solver` integrates `ControlTerm`s but not drift terms such as `AttentiveTerm`
    (its `term_types`): the log-ODE method, which needs the model as a CDE driven by $X$."""
    return issubclass(ControlTerm, solver.term_types) and not issubclass(AttentiveTerm, solver.term_types)


class ANCDE(AbstractContinuousModel):
    """Attentive neural CDE: a bottom CDE's attention reweights the top CDE's control.

    **Numerics.** The defaults are those of [`NeuralCDE`][neuralct.models.ncde.NeuralCDE]
    (`Tsit5()`, `PIDController(rtol=1e-3, atol=1e-4)`); any `SolveOptions` works. The state is
    $[h; z]$ `[B, C' + H]`, so an adaptive solver controls the error of both CDEs. Under the
    log-ODE method (`LogODE`, which takes `ControlTerm`s only) the model is solved as the CDE on
    $[x; h; z]$ of the module docstring (`control_term`, `control_initial_state`); its solution
    is returned on $[h; z]$ all the same.

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
        check_sizes(hidden=hidden, outputs=outputs, attention_hidden=attention_hidden)
        check_choice("attention", attention, ATTENTIONS)
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
        return self.control_initial_state(batch)[:, self.control.path_channels :]

    def control_initial_state(self, batch: IrregularBatch) -> Tensor:
        """`[B, 2 C' + H]` $[X(t_0); h(t_0); z(t_0)]$, the start of the control form."""
        x = self.control.path(batch).evaluate(batch.times[:, 0]).to(self.embed_top.weight.dtype)
        h = self.embed_bottom(x)
        return torch.cat([x, h, self.embed_top(x * self.attention(h))], dim=-1)

    def term(self, batch: IrregularBatch) -> AttentiveTerm:
        """The joint $[h; z]$ term with `batch`'s control path."""
        return AttentiveTerm(self.bottom, self.attention, self.top, self.control.path(batch))

    def control_term(self, batch: IrregularBatch) -> ControlTerm:
        """The model as the CDE $dW = F(W)\\,dX$ on $W = [x; h; z]$ with `batch`'s control path."""
        field = AttentiveControlField(self.bottom, self.attention, self.top, self.control.path_channels)
        return ControlTerm(field, self.control.path(batch))

    def solution(self, batch: IrregularBatch, options: SolveOptions | None = None) -> Solution:
        """The solve behind `run`, on $[h; z]$: the drift form (`term`), or the control form
        (`control_term`, with $x$ dropped from the states) under a solver that takes
        `ControlTerm`s only (see `takes_control_form`)."""
        options = options if options is not None else self.default_solve_options()
        if not takes_control_form(options.solver):
            return super().solution(batch, options)
        start, times = self.control_initial_state(batch), self.save_times(batch)
        solution = solve_to_ends(self.control_term(batch), start, times, batch, options)
        split = self.control.path_channels
        return dataclasses.replace(solution, ys=solution.ys[..., split:], y_final=solution.y_final[..., split:])

    def readout(self, solution: Solution, batch: IrregularBatch) -> Tensor:
        """`[B, O]` a linear map of $z$ at each sample's last observation."""
        return self.head(last_observed(solution.ys, batch)[:, self.control.path_channels :])


__all__ = [
    "ATTENTIONS",
    "ANCDE",
    "AttentiveControlField",
    "AttentiveTerm",
    "SoftAttention",
    "TimewiseAttention",
    "takes_control_form",
]
