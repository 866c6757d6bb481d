"""ODE-RNN: a GRU whose state follows a neural ODE between observations.

Reference: Rubanova, Chen & Duvenaud, "Latent ODEs for Irregularly-Sampled Time Series",
NeurIPS 2019 (code: `YuliaRubanova/latent_ode`, `lib/ode_rnn.py`, `lib/encoder_decoder.py`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..._checks import check_sizes
from ...controllers.knots import KnotToKnot
from ...data.series import IrregularBatch
from ...solvers.rk import Euler
from ..base import AbstractJumpModel, SolveOptions, VectorField
from ._common import observation, zero_state


class MLPField(nn.Module):
    """The autonomous vector field $f_\\theta(h)$: a tanh MLP `[B, H] -> [B, H]` that ignores time.

    `depth` hidden layers of `width` units, each a linear map and a tanh, then a linear map
    back to H (Rubanova et al.'s `create_net` with `nonlinear=nn.Tanh`).

    Args:
        hidden: state size H.
        width: units per hidden layer.
        depth: number of hidden layers.
    """

    def __init__(self, hidden: int, width: int, depth: int):
        super().__init__()
        sizes = [hidden] + [width] * depth
        layers: list[nn.Module] = []
        for size_in, size_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(size_in, size_out), nn.Tanh()]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], hidden))

    def forward(self, t: Tensor, h: Tensor, args: Any) -> Tensor:
        """`[B, H]` $f_\\theta(h)$; `t` `[B]` and `args` are unused."""
        return self.net(h)


class ODERNN(AbstractJumpModel):
    """ODE-RNN (Rubanova et al., 2019): $h'_k = \\mathrm{ODESolve}(f_\\theta, h_{k-1}, (t_{k-1}, t_k))$,
    then $h_k = \\mathrm{GRU}([x_k, m_k], h'_k)$.

    Between observations the state follows $\\dot h = f_\\theta(h)$ (`MLPField`), solved by
    whatever `SolveOptions` are given; at each observation a `torch.nn.GRUCell` reads the
    values (0 where missing) and the mask. Where no channel is observed the state is kept as
    the flow left it, as the reference `GRU_unit` does. The reference unit's gates are small
    MLPs and it also updates a standard deviation (for the Latent ODE encoder); the ODE-RNN
    classifier here uses a standard GRU cell, which the paper's $\\mathrm{RNNCell}$ allows.

    **Numerics.** `default_solve_options()` is one Euler step per observation gap
    (`Euler()` with `KnotToKnot()`), the reference encoder's method: it takes a single Euler
    step over any gap shorter than 1/50 of the series' span (most gaps of a series with more
    than 50 observations) and subdivides longer gaps, which options fixed before seeing the
    batch cannot copy. One evaluation of $f_\\theta$ per observation keeps ODE-RNN as cheap
    as a GRU and needs no time unit; for series with long gaps or when the ODE itself is the
    object, pass adaptive options, e.g. `SolveOptions(Tsit5(), PIDController(rtol=1e-3,
    atol=1e-6))`; `ModelOutput.stats` reports what each choice cost.

    Args:
        channels: input channels C.
        hidden: state size H.
        outputs: prediction size O (a linear readout of the state after the last observation).
        flow_width: units per hidden layer of $f_\\theta$ (reference: 100).
        flow_depth: hidden layers of $f_\\theta$ (reference: 2, `create_net` with `n_layers=1`).

    Raises:
        InvalidInputError: a size is not a positive int.
    """

    def __init__(self, channels: int, hidden: int, outputs: int, *, flow_width: int = 64, flow_depth: int = 2):
        super().__init__()
        check_sizes(channels=channels, hidden=hidden, outputs=outputs, flow_width=flow_width, flow_depth=flow_depth)
        self.channels, self.hidden = channels, hidden
        self.field = MLPField(hidden, flow_width, flow_depth)
        self.cell = nn.GRUCell(2 * channels, hidden)
        self.head = nn.Linear(hidden, outputs)

    @property
    def flow(self) -> VectorField | None:
        """The vector field $f_\\theta$ (`MLPField`) the state follows between observations."""
        return self.field

    def default_solve_options(self) -> SolveOptions | None:
        """One Euler step per observation gap, as the reference encoder (see the class docstring)."""
        return SolveOptions(solver=Euler(), controller=KnotToKnot())

    def initial_state(self, batch: IrregularBatch) -> Tensor:
        """`[B, H]` zeros."""
        return zero_state(batch, self.channels, self.hidden)

    def update(self, h: Tensor, batch: IrregularBatch, k: int) -> Tensor:
        """`[B, H]` $\\mathrm{GRU}([x_k, m_k], h)$, or `h` itself where no channel is observed at `k`."""
        x, mask = observation(batch, k)
        updated = self.cell(torch.cat([x, mask], dim=-1), h)
        return torch.where(batch.observed[:, k : k + 1], updated, h)

    def readout(self, h: Tensor, batch: IrregularBatch) -> Tensor:
        """`[B, O]` a linear map of the state."""
        return self.head(h)
