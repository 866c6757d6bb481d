"""CfC: closed-form continuous-depth networks, the solver-free approximation of the LTC flow.

At each observation the state jumps to a closed-form function of the input, the previous state
and the time $\\Delta t$ elapsed since the previous observation. A backbone MLP reads
$[x_k, h_{k-1}]$ into features $z$; two heads $f_1 = \\tanh(W_1 z + b_1)$,
$f_2 = \\tanh(W_2 z + b_2)$ and a time gate $g = \\sigma(t_a(z)\\, \\Delta t + t_b(z))$ give

- `"default"`: $h_k = f_1 \\odot (1 - g) + g \\odot f_2$;
- `"no_gate"`: $h_k = f_1 + g \\odot f_2$;
- `"pure"`: $h_k = A - A \\odot e^{-\\Delta t\\, (|w_\\tau| + |u|)} \\odot u$ with $u = W_1 z + b_1$, the
  direct closed-form solution of the LTC equation (no $\\tanh$ on this head).

There is no ODE solve: CfC is a jump model whose state does not move between observations.

Reference: Hasani, Lechner, Amini, Liebenwein, Ray, Tschaikowski, Teschl & Rus, "Closed-form
continuous-time neural networks", Nature Machine Intelligence 4, 2022; the cell follows
`ncps.torch.CfCCell` (`mlech26l/ncps`), whose parameter names it keeps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_int, check_number, check_sizes
from ..data.series import IrregularBatch
from .base import AbstractJumpModel, VectorField, held_input

MODES = ("default", "no_gate", "pure")


class LeCunTanh(nn.Module):
    """LeCun's scaled hyperbolic tangent $1.7159 \\tanh(0.666\\, x)$ (LeCun et al., "Efficient BackProp", 1998)."""

    def forward(self, x: Tensor) -> Tensor:
        """Elementwise on any shape."""
        return 1.7159 * torch.tanh(0.666 * x)


ACTIVATIONS = {"lecun_tanh": LeCunTanh, "tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}


class CfCCell(nn.Module):
    """One CfC update $h_k = F(x_k, h_{k-1}, \\Delta t_k)$, as `ncps.torch.CfCCell` (see the module docstring).

    Every matrix parameter is Xavier-uniform initialised; with `backbone_layers=0` the heads read
    $[x, h]$ directly.

    Args:
        inputs: input channels C.
        hidden: state size H.
        mode: `"default"`, `"no_gate"` or `"pure"`.
        backbone_units: width of the backbone layers.
        backbone_layers: number of backbone layers (0: none).
        backbone_activation: one of `"lecun_tanh"`, `"tanh"`, `"relu"`, `"silu"`, `"gelu"`.
        backbone_dropout: dropout probability after every backbone layer but the first.

    Raises:
        InvalidInputError: on a bad size, mode, activation or dropout probability.
    """

    def __init__(
        self,
        inputs: int,
        hidden: int,
        *,
        mode: str = "default",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        backbone_activation: str = "lecun_tanh",
        backbone_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_options(mode, backbone_units, backbone_layers, backbone_activation, backbone_dropout)
        self.mode = mode
        width = inputs + hidden
        layers: list[nn.Module] = []
        for index in range(backbone_layers):
            layers += [
                nn.Linear(width if index == 0 else backbone_units, backbone_units),
                ACTIVATIONS[backbone_activation](),
            ]
            if index > 0 and backbone_dropout > 0:
                layers.append(nn.Dropout(backbone_dropout))
        self.backbone = nn.Sequential(*layers)
        features = backbone_units if backbone_layers > 0 else width
        self.ff1 = nn.Linear(features, hidden)
        if mode == "pure":
            self.w_tau = nn.Parameter(torch.zeros(1, hidden))
            self.A = nn.Parameter(torch.ones(1, hidden))
        else:
            self.ff2 = nn.Linear(features, hidden)
            self.time_a = nn.Linear(features, hidden)
            self.time_b = nn.Linear(features, hidden)
        for parameter in self.parameters():
            if parameter.dim() == 2:
                nn.init.xavier_uniform_(parameter)

    def forward(self, x: Tensor, h: Tensor, elapsed: Tensor) -> Tensor:
        """`[B, H]` the new state from `x` `[B, C]`, `h` `[B, H]` and `elapsed` `[B, 1]` (or a scalar)."""
        z = self.backbone(torch.cat([x, h], dim=1))
        ff1 = self.ff1(z)
        if self.mode == "pure":
            return self.A - self.A * torch.exp(-elapsed * (self.w_tau.abs() + ff1.abs())) * ff1
        ff1, ff2 = torch.tanh(ff1), torch.tanh(self.ff2(z))
        gate = torch.sigmoid(self.time_a(z) * elapsed + self.time_b(z))
        if self.mode == "no_gate":
            return ff1 + gate * ff2
        return ff1 * (1.0 - gate) + gate * ff2


class CfC(AbstractJumpModel):
    """A CfC network over irregular series, read out linearly after each sample's last observation.

    The state starts at 0; observation k (missing channels carried forward, as `held_input`
    does for the continuous models) updates it with the per-sample gap $t_k - t_{k-1}$ as the
    elapsed time, and `first_gap` (ncps's default 1.0) for the first observation. No solve is
    involved: `default_solve_options()` is `None` and the state does not flow between
    observations (`flow` is `None`), so options passed to `run` are not used.

    Args:
        channels: input channels C.
        hidden: state size H.
        outputs: outputs O of the linear readout.
        mode: `"default"`, `"no_gate"` or `"pure"` (see `CfCCell`).
        backbone_units: width of the backbone layers.
        backbone_layers: number of backbone layers (0: none).
        backbone_activation: one of `"lecun_tanh"`, `"tanh"`, `"relu"`, `"silu"`, `"gelu"`.
        backbone_dropout: dropout probability after every backbone layer but the first.
        first_gap: the elapsed time of the first observation.

    Raises:
        InvalidInputError: on a bad size, mode, activation, dropout probability or `first_gap`.
    """

    def __init__(
        self,
        channels: int,
        hidden: int,
        outputs: int,
        *,
        mode: str = "default",
        backbone_units: int = 128,
        backbone_layers: int = 1,
        backbone_activation: str = "lecun_tanh",
        backbone_dropout: float = 0.0,
        first_gap: float = 1.0,
    ) -> None:
        super().__init__()
        check_sizes(channels=channels, hidden=hidden, outputs=outputs)
        self.first_gap = check_number("first_gap", first_gap, 0.0, open_low=True)
        self.cell = CfCCell(
            channels,
            hidden,
            mode=mode,
            backbone_units=backbone_units,
            backbone_layers=backbone_layers,
            backbone_activation=backbone_activation,
            backbone_dropout=backbone_dropout,
        )
        self.output = nn.Linear(hidden, outputs)
        self._held: tuple[IrregularBatch, Tensor] | None = None

    def default_solve_options(self) -> None:
        """`None`: CfC solves nothing."""
        return None

    @property
    def flow(self) -> VectorField | None:
        """`None`: the state does not move between observations."""
        return None

    def initial_state(self, batch: IrregularBatch) -> Tensor:
        """`[B, H]` zeros."""
        return self.output.weight.new_zeros(batch.batch_size, self.output.in_features)

    def update(self, h: Tensor, batch: IrregularBatch, k: int) -> Tensor:
        """`[B, H]` the CfC update with observation k and the gap that ends at it."""
        if k == 0:
            elapsed = torch.full_like(h[:, :1], self.first_gap)
        else:
            elapsed = (batch.times[:, k : k + 1] - batch.times[:, k - 1 : k]).to(h.dtype)
        return self.cell(self._inputs(batch)[:, k].to(h.dtype), h, elapsed)

    def readout(self, h: Tensor, batch: IrregularBatch) -> Tensor:
        """`[B, O]` the linear readout of the state after each sample's last observation."""
        return self.output(h)

    def _inputs(self, batch: IrregularBatch) -> Tensor:
        """`[B, T, C]` the batch's values with missing channels carried forward, built once per batch."""
        if self._held is None or self._held[0] is not batch:
            self._held = (batch, held_input(batch).values)
        return self._held[1]


def _check_options(mode: str, units: int, layers: int, activation: str, dropout: float) -> None:
    check_choice("mode", mode, MODES)
    check_int("backbone_units", units, 1)
    check_int("backbone_layers", layers, 0)
    check_choice("backbone_activation", activation, ACTIVATIONS)
    check_number("backbone_dropout", dropout, 0.0, 1.0, open_high=True)


__all__ = ["CfC", "CfCCell", "LeCunTanh"]
