"""GRU-$\\Delta t$: a GRU told the time since the previous observation.

Reference: the "RNN-$\\Delta_t$" baseline of Rubanova, Chen & Duvenaud, "Latent ODEs for
Irregularly-Sampled Time Series", NeurIPS 2019, and "GRU-$\\Delta t$" of Kidger, Morrill,
Foster & Lyons, "Neural Controlled Differential Equations for Irregular Time Series",
NeurIPS 2020.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..._checks import check_sizes
from ...data.series import IrregularBatch
from ..base import AbstractJumpModel, SolveOptions, VectorField
from ._common import gap, observation, zero_state


class GRUDelta(AbstractJumpModel):
    """A `torch.nn.GRUCell` over $[x_k, m_k, \\Delta_k]$ with $\\Delta_k = t_k - t_{k-1}$ ($\\Delta_0 = 0$).

    The values are 0 where missing and the mask says which are; the gap is the only way time
    enters, so the state does not change between observations (`flow` is `None`, and
    `default_solve_options()` is `None`). Every real position updates the state, also one
    where no channel is observed (its input is then the gap alone). Kidger et al.'s version
    instead skips such positions and feeds the time since the last position that had one;
    with per-sample times a position without any observation is rare.

    Args:
        channels: input channels C.
        hidden: GRU state size H.
        outputs: prediction size O (a linear readout of the state after the last observation).

    Raises:
        InvalidInputError: a size is not a positive int.
    """

    def __init__(self, channels: int, hidden: int, outputs: int):
        super().__init__()
        check_sizes(channels=channels, hidden=hidden, outputs=outputs)
        self.channels, self.hidden = channels, hidden
        self.cell = nn.GRUCell(2 * channels + 1, hidden)
        self.head = nn.Linear(hidden, outputs)

    @property
    def flow(self) -> VectorField | None:
        """`None`: the state does not evolve between observations."""
        return None

    def default_solve_options(self) -> SolveOptions | None:
        """`None`: GRU-$\\Delta t$ solves nothing."""
        return None

    def initial_state(self, batch: IrregularBatch) -> Tensor:
        """`[B, H]` zeros."""
        return zero_state(batch, self.channels, self.hidden)

    def update(self, h: Tensor, batch: IrregularBatch, k: int) -> Tensor:
        """`[B, H]` $\\mathrm{GRU}([x_k, m_k, \\Delta_k], h)$."""
        x, mask = observation(batch, k)
        return self.cell(torch.cat([x, mask, gap(batch, k)], dim=-1), h)

    def readout(self, h: Tensor, batch: IrregularBatch) -> Tensor:
        """`[B, O]` a linear map of the state."""
        return self.head(h)
