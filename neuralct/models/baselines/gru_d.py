"""GRU-D: a GRU that decays its inputs towards their mean and its state towards zero while data is missing.

Reference: Che, Purushotham, Cho, Sontag & Liu, "Recurrent Neural Networks for Multivariate
Time Series with Missing Values", Scientific Reports 8, 6085 (2018).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..._checks import check_sizes
from ...data.series import IrregularBatch, check_batch
from ...errors import InvalidInputError
from ..base import AbstractJumpModel, SolveOptions, VectorField
from ._common import gap, observation, zero_state


class GRUD(AbstractJumpModel):
    """The full GRU-D of Che et al. (2018), with input and hidden decay and the mask as input.

    At each observation k, with mask $m_k$, values $x_k$ and, per channel d, the time
    $\\delta_k^d$ since channel d was last observed before $t_k$
    ($\\delta_k^d = t_k - t_{k-1} + \\delta_{k-1}^d$ if $m_{k-1}^d = 0$, else $t_k - t_{k-1}$;
    $\\delta_0 = 0$):

    $$\\gamma_x = e^{-\\max(0,\\, w_{\\gamma x} \\odot \\delta_k + b_{\\gamma x})}, \\qquad
    \\gamma_h = e^{-\\max(0,\\, W_{\\gamma h} \\delta_k + b_{\\gamma h})},$$

    $$\\hat x_k = m_k \\odot x_k + (1 - m_k) \\odot (\\gamma_x \\odot x_{last} + (1 - \\gamma_x) \\odot \\bar x),
    \\qquad \\hat h = \\gamma_h \\odot h_{k-1}, \\qquad h_k = \\mathrm{GRU}([\\hat x_k, m_k], \\hat h),$$

    where $x_{last}$ is each channel's last observed value ($\\bar x$ before its first
    observation) and $\\bar x$ the per-channel training mean (`means`). The input decay
    $w_{\\gamma x}$ is diagonal (one rate per channel), the hidden decay $W_{\\gamma h}$
    `[H, C]` full. The GRU cell is `torch.nn.GRUCell` (its reset gate multiplies
    $W_{hn} \\hat h + b_{hn}$, as in cuDNN, where the paper's Cho-style candidate multiplies
    $\\hat h$ before the matrix), so with every channel observed GRU-D is exactly a torch GRU
    on $[x_k, 1]$ with state $\\gamma_h \\odot h_{k-1}$.

    This is the full model: the baselines in the reference code bases simplify it (Rubanova et
    al.'s `rnn_baselines.py` normalises the cumulative gap by its maximum and decays the state
    by one scalar; Kidger et al.'s `GRU_D` in NeuralCDE keeps only a hidden decay of the gap).

    **State.** The recursion for $\\delta$ and $x_{last}$ is carried in the state, so each is
    computed once per position and nothing outlives the batch: the state is `[B, H + 2C]`,
    $[h, \\tau, x_{last}]$ with $\\tau^d$ the time from channel d's last observation to the
    current position; the readout uses $h$ only. `flow` is `None`: nothing evolves between
    observations, so `default_solve_options()` is `None` and any options given are unused.

    Args:
        channels: input channels C.
        hidden: GRU state size H.
        outputs: prediction size O (a linear readout of $h$ after the last observation).
        means: `[C]` per-channel training means $\\bar x$ (a buffer); `None` for zeros (right for
            standardised data). `fit_means(batch)` sets them from a training batch.

    Raises:
        InvalidInputError: a size is not a positive int, or `means` is not C finite numbers.
    """

    def __init__(self, channels: int, hidden: int, outputs: int, *, means: Tensor | Sequence[float] | None = None):
        super().__init__()
        check_sizes(channels=channels, hidden=hidden, outputs=outputs)
        self.channels, self.hidden = channels, hidden
        # Uniform in +-1/sqrt(C), as PyPOTS's GRU-D (TemporalDecay) draws its input decay.
        bound = 1.0 / math.sqrt(channels)
        self.input_decay_weight = nn.Parameter(torch.empty(channels).uniform_(-bound, bound))
        self.input_decay_bias = nn.Parameter(torch.empty(channels).uniform_(-bound, bound))
        self.hidden_decay = nn.Linear(channels, hidden)
        self.cell = nn.GRUCell(2 * channels, hidden)
        self.head = nn.Linear(hidden, outputs)
        self.register_buffer("means", _check_means(means, channels))

    @property
    def flow(self) -> VectorField | None:
        """`None`: the state only decays, at the next observation."""
        return None

    def default_solve_options(self) -> SolveOptions | None:
        """`None`: GRU-D solves nothing."""
        return None

    @torch.no_grad()
    def fit_means(self, batch: IrregularBatch) -> Tensor:
        """Set `means` to the per-channel mean of the observed values of `batch` and return it `[C]`."""
        check_batch(batch, self.channels)
        mask = batch.mask.to(batch.values.dtype)
        means = batch.values.sum(dim=(0, 1)) / mask.sum(dim=(0, 1))
        self.means.copy_(means)
        return self.means

    def decays(self, delta: Tensor) -> tuple[Tensor, Tensor]:
        """`(gamma_x [B, C], gamma_h [B, H])` for the times since last observation `delta` `[B, C]`."""
        gamma_x = torch.exp(-torch.relu(self.input_decay_weight * delta + self.input_decay_bias))
        return gamma_x, torch.exp(-torch.relu(self.hidden_decay(delta)))

    def impute(self, x: Tensor, mask: Tensor, last: Tensor, gamma_x: Tensor) -> Tensor:
        """`[B, C]` $\\hat x = m x + (1 - m)(\\gamma_x x_{last} + (1 - \\gamma_x) \\bar x)$ (`mask` as 0/1)."""
        return mask * x + (1 - mask) * (gamma_x * last + (1 - gamma_x) * self.means)

    def initial_state(self, batch: IrregularBatch) -> Tensor:
        """`[B, H + 2C]`: $h = 0$, $\\tau = 0$ and $x_{last} = \\bar x$."""
        state = zero_state(batch, self.channels, self.hidden + 2 * self.channels)
        return torch.cat([state[:, : -self.channels], self.means.expand(batch.batch_size, -1)], dim=-1)

    def update(self, h: Tensor, batch: IrregularBatch, k: int) -> Tensor:
        """`[B, H + 2C]` the state after observation `k`; see the class docstring."""
        hidden, elapsed, last = h.split([self.hidden, self.channels, self.channels], dim=-1)
        x, mask = observation(batch, k)
        delta = elapsed + gap(batch, k)
        gamma_x, gamma_h = self.decays(delta)
        x_hat = self.impute(x, mask, last, gamma_x)
        hidden = self.cell(torch.cat([x_hat, mask], dim=-1), gamma_h * hidden)
        seen = batch.mask[:, k]
        elapsed = torch.where(seen, torch.zeros_like(delta), delta)
        return torch.cat([hidden, elapsed, torch.where(seen, x, last)], dim=-1)

    def readout(self, h: Tensor, batch: IrregularBatch) -> Tensor:
        """`[B, O]` a linear map of the GRU state $h$ (the first H entries of the state)."""
        return self.head(h[:, : self.hidden])


def _check_means(means: Tensor | Sequence[float] | None, channels: int) -> Tensor:
    if means is None:
        return torch.zeros(channels)
    try:
        tensor = torch.as_tensor(means, dtype=torch.get_default_dtype()).detach().clone()
    except (TypeError, ValueError, RuntimeError) as error:
        raise InvalidInputError(f"`means` must be {channels} finite numbers or None; got {means!r}") from error
    if tensor.shape != (channels,) or not bool(torch.isfinite(tensor).all()):
        raise InvalidInputError(
            f"`means` must be {channels} finite numbers (one per channel) or None; got {tensor.tolist()}"
        )
    return tensor
