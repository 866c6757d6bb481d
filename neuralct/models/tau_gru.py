"""τ-GRU: a gated recurrent unit with weighted time-delay feedback, as a delay equation.

$$\\dot h(t) = \\gamma \\odot \\Big(-h(t) + u + \\sum_i a_i \\odot z_i\\Big),\\qquad
u = \\tanh(W_1 h(t) + U_1 x(t)),\\quad z_i = \\tanh(W_{2,i}\\, h(t - \\tau_i) + U_{2,i}\\, x(t)),$$

with the gate $\\gamma = \\sigma(W_3 h(t) + U_3 x(t))$ read as a rate and the learnable delay
weights $a_i = \\sigma(W_{4,i} h(t) + U_{4,i} x(t))$ (each $U$ with a bias). The history is
$h = 0$ before the solve starts. Euler's method with step $\\Delta$ is the discrete τ-GRU cell
$h_{n+1} = (1 - g_n) h_n + g_n (u_n + \\sum_i a_{i,n} z_{i,n})$ with the gate $g_n = \\Delta\\,\\gamma_n$
(on a unit grid, $g_n = \\sigma(W_3 h_n + U_3 x_n)$ exactly); see `tau_gru_recursion`.

Reference: Erichson, Lim & Mahoney, "Gated Recurrent Neural Networks with Weighted Time-Delay
Feedback", arXiv:2212.00228 (AISTATS 2025). The delay equation is the continuous-time reading
of the discrete cell; the method of steps solves it (Bellen & Zennaro, *Numerical Methods for
Delay Differential Equations*, Oxford 2003).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._checks import check_int, check_number
from ..controllers import KnotToKnot
from ..data.series import IrregularBatch
from ..errors import InvalidInputError
from ..solution import Solution
from ..solvers.dde import MethodOfSteps
from ..solvers.rk import Euler
from ..terms.delay import DelayTerm
from .base import AbstractContinuousModel, SolveOptions, held_input, last_observed, lead_in_times
from .noisy_rnn import InputDriven


class TauGRUCell(nn.Module):
    """The gates and candidates of τ-GRU with n delays.

    Args:
        channels: input channels C.
        hidden: hidden units H.
        n_delays: number of delays n, each with its own $W_{2,i}$, $U_{2,i}$, $W_{4,i}$, $U_{4,i}$.
    """

    def __init__(self, channels: int, hidden: int, n_delays: int):
        super().__init__()
        self.hidden, self.n_delays = hidden, n_delays
        # Rows of input_map: U_1, U_3, U_{4,i} (n), U_{2,i} (n); of state_map: W_1, W_3, W_{4,i}.
        self.input_map = nn.Linear(channels, hidden * (2 + 2 * n_delays))
        self.state_map = nn.Linear(hidden, hidden * (2 + n_delays), bias=False)
        self.delayed_map = nn.Parameter(torch.empty(n_delays, hidden, hidden).uniform_(-1, 1) / math.sqrt(hidden))

    def parts(self, x: Tensor, h: Tensor, h_delayed: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """`(u [B, H], gate [B, H], weights [B, n, H], z [B, n, H])` from `x` `[B, C]`, `h` `[B, H]`
        and `h_delayed` `[B, n, H]` ($h(t - \\tau_i)$); `gate` is $\\sigma(W_3 h + U_3 x)$."""
        n = self.n_delays
        inputs = self.input_map(x).unflatten(-1, (2 + 2 * n, self.hidden))
        states = self.state_map(h).unflatten(-1, (2 + n, self.hidden))
        u = torch.tanh(states[:, 0] + inputs[:, 0])
        gate = torch.sigmoid(states[:, 1] + inputs[:, 1])
        weights = torch.sigmoid(states[:, 2:] + inputs[:, 2 : 2 + n])
        z = torch.tanh(torch.einsum("nij,bnj->bni", self.delayed_map, h_delayed) + inputs[:, 2 + n :])
        return u, gate, weights, z

    def forward(self, x: Tensor, h: Tensor, h_delayed: Tensor) -> Tensor:
        """`[B, H]` the rate $\\gamma \\odot (-h + u + \\sum_i a_i \\odot z_i)$."""
        u, gate, weights, z = self.parts(x, h, h_delayed)
        return gate * (u + (weights * z).sum(dim=1) - h)

    def step(self, x: Tensor, h: Tensor, h_delayed: Tensor, dt: float) -> Tensor:
        """`[B, H]` the discrete cell $(1 - g) h + g (u + \\sum_i a_i z_i)$ with $g = $ `dt` $\\gamma$."""
        u, gate, weights, z = self.parts(x, h, h_delayed)
        g = dt * gate
        return (1 - g) * h + g * (u + (weights * z).sum(dim=1))


def tau_gru_recursion(cell: TauGRUCell, x: Tensor, lags: Sequence[int], dt: float = 1.0) -> Tensor:
    """The discrete τ-GRU recursion, the reference for the delay equation on uniform grids.

    $h_0 = 0$ and $h_{n+1} = $ `cell.step`$(x_n, h_n, [h_{n - m_i}]_i, \\Delta)$ with $h_j = 0$ for
    $j < 0$: Euler's method on the delay equation with step $\\Delta$ and delays $\\tau_i = m_i \\Delta$,
    the step from $t_n$ to $t_{n+1}$ reading $x_n$.

    Args:
        cell: the cell.
        x: `[B, N, C]` inputs.
        lags: the delays in steps $m_i \\ge 1$, one per delay of `cell`.
        dt: the step $\\Delta$.

    Returns:
        `[B, N + 1, H]` the states $h_0, \\dots, h_N$.
    """
    h = x.new_zeros(x.shape[0], cell.hidden)
    states = [h]
    for n in range(x.shape[1]):
        delayed = torch.stack([states[n - m] if n >= m else torch.zeros_like(h) for m in lags], dim=1)
        states.append(cell.step(x[:, n], states[n], delayed, dt))
    return torch.stack(states, dim=1)


class TauGRU(AbstractContinuousModel):
    """τ-GRU over irregular series: the delay equation of the module docstring, read out linearly.

    The state starts at 0 a time `first_gap` before each sample's first observation (history
    $h = 0$ before that), so the first step reads $x_0$ and each gap $(t_{k-1}, t_k)$ reads $x_k$
    ([`held_input`][neuralct.models.base.held_input]); steps land on every observation time
    and every breakpoint $t_0 + \\sum_i k_i \\tau_i$. The default `SolveOptions(MethodOfSteps(Euler()),
    KnotToKnot())` takes one Euler step per gap (split at breakpoints): on a unit grid with
    integer delays it is the discrete τ-GRU. `MethodOfSteps` around any explicit Runge-Kutta
    method solves the same equation, the delayed states read from its dense history.

    Args:
        channels: input channels C.
        hidden: hidden units H.
        outputs: outputs O of the linear readout.
        delays: the delays $\\tau_i > 0$ in the batch's time units.
        first_gap: positive length of the step that reads $x_0$.

    Raises:
        InvalidInputError: a size not a positive int, `delays` empty or not positive numbers,
            or `first_gap` not a positive number.
    """

    def __init__(
        self,
        channels: int,
        hidden: int,
        outputs: int,
        *,
        delays: Sequence[float] = (1.0,),
        first_gap: float = 1.0,
    ):
        super().__init__()
        for name, value in (("channels", channels), ("hidden", hidden), ("outputs", outputs)):
            check_int(name, value)
        if isinstance(delays, (str, bytes)) or not isinstance(delays, Sequence) or len(delays) == 0:
            raise InvalidInputError(f"`delays` must be a non-empty sequence of positive numbers; got {delays!r}")
        self.delays = tuple(check_number("delays", tau, 0.0, open_low=True) for tau in delays)
        self.first_gap = check_number("first_gap", first_gap, 0.0, open_low=True)
        self.cell = TauGRUCell(channels, hidden, len(self.delays))
        self.decoder = nn.Linear(hidden, outputs)

    def default_solve_options(self) -> SolveOptions:
        """`SolveOptions(MethodOfSteps(Euler()), KnotToKnot())`."""
        return SolveOptions(MethodOfSteps(Euler()), KnotToKnot())

    def initial_state(self, batch: IrregularBatch) -> Tensor:
        """`[B, H]` zeros."""
        return self.decoder.weight.new_zeros(batch.batch_size, self.cell.hidden)

    def save_times(self, batch: IrregularBatch) -> Tensor:
        """`[B, T + 1]`: each sample's $t_0$ - `first_gap`, then its observation times."""
        return lead_in_times(batch, self.first_gap)

    def term(self, batch: IrregularBatch) -> DelayTerm:
        """The delay equation driven by the batch's `held_input`, with zero history."""
        inputs = held_input(batch)
        return DelayTerm(InputDriven(self.cell, inputs), self.delays, self.initial_state(batch), inputs=inputs)

    def readout(self, solution: Solution, batch: IrregularBatch) -> Tensor:
        """`[B, O]` the linear readout of the state at each sample's last observation."""
        return self.decoder(last_observed(solution.ys[:, 1:], batch))
