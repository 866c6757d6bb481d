"""Neural controlled differential equations (neural CDEs).

The observations are interpolated into a continuous control path $X(t)$ (time as a channel by
default) and the hidden state follows the CDE

$$z(t) = z(t_0) + \\int_{t_0}^{t} f_\\theta(z(s))\\,dX(s), \\qquad z(t_0) = \\zeta_\\theta(X(t_0)),$$

solved as the ODE $\\dot z = f_\\theta(z)\\,\\dot X(t)$ by
[`ControlTerm`][neuralct.ControlTerm]; the prediction is a linear map of $z$ at each sample's last
observation. $f_\\theta$ is the "FinalTanh" MLP of the reference code: ReLU hidden layers and a
tanh output reshaped to a `[hidden, control channels]` matrix.

Reference: Kidger, Morrill, Foster & Lyons, "Neural Controlled Differential Equations for
Irregular Time Series", NeurIPS 2020.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_int
from ..controllers.pid import PIDController
from ..data.controls import KINDS, ControlPath, control_path
from ..data.series import IrregularBatch
from ..errors import InvalidInputError
from ..solution import Solution
from ..solvers.rk import Tsit5
from ..terms.control import ControlTerm
from .base import AbstractContinuousModel, SolveOptions, last_observed


def robust_options() -> SolveOptions:
    """The default numerics of the neural CDE family: `Tsit5()` with `PIDController(rtol=1e-3, atol=1e-4)`.

    The reference code uses RK4 with one step the size of the smallest observation gap of the
    whole dataset: on irregular per-sample grids that step is set by the densest sample and
    wastes steps on every other one, while a gap much larger than the step never appears. An
    adaptive pair controls the error of each sample on its own grid, and the path's knots are
    jump times, so every step still lands on each observation. For one RK4 step per gap (the
    discrete-RNN cost), pass `SolveOptions(RK4(), KnotToKnot())`.
    """
    return SolveOptions(Tsit5(), PIDController(rtol=1e-3, atol=1e-4))


@dataclass(frozen=True)
class CDEControl:
    """How a batch becomes the control path of a CDE model (see
    [`control_path`][neuralct.data.control_path]).

    Args:
        channels: data channels C of the batches the model reads.
        interpolation: `"limited_hermite"` (the default), `"hermite"`, `"linear"`, `"rectilinear"` or `"natural"`.
        time_channel: prepend time as a channel.
        count_channels: append one cumulative observation count per data channel.

    Raises:
        InvalidInputError: a bad size, an unknown interpolation, a non-bool flag, or a
            rectilinear path without the time channel.
    """

    channels: int
    interpolation: str = "limited_hermite"
    time_channel: bool = True
    count_channels: bool = False

    def __post_init__(self) -> None:
        check_int("channels", self.channels)
        check_choice("interpolation", self.interpolation, KINDS)
        for name in ("time_channel", "count_channels"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"`{name}` must be True or False; got {getattr(self, name)!r}")
        if self.interpolation == "rectilinear" and not self.time_channel:
            raise InvalidInputError("`time_channel` must be True for interpolation='rectilinear'; got False")

    @property
    def path_channels(self) -> int:
        """Channels of the control path: `time_channel + C * (1 + count_channels)`."""
        return int(self.time_channel) + self.channels * (1 + int(self.count_channels))

    def path(self, batch: IrregularBatch) -> ControlPath:
        """The control path of `batch` `[B, T, C]`, with `path_channels` channels.

        Raises:
            InvalidInputError: `batch` is not an `IrregularBatch` with C channels and T >= 2.
        """
        if isinstance(batch, IrregularBatch) and batch.channels != self.channels:
            raise InvalidInputError(
                f"`batch` must have the model's {self.channels} channels; got {batch.channels} channels"
            )
        return control_path(
            batch, self.interpolation, time_channel=self.time_channel, count_channels=self.count_channels
        )


class FinalTanh(nn.Module):
    """The neural CDE vector field $f(z) = \\tanh(\\mathrm{MLP}(z))$ reshaped to `[B, D, C]`.

    The MLP has `depth` ReLU hidden layers of `width` units; the tanh output keeps the field
    bounded, as in the reference code.

    Args:
        state: state size D.
        channels: control channels C.
        width: units of each hidden layer.
        depth: number of hidden layers, >= 1.
    """

    def __init__(self, state: int, channels: int, width: int, depth: int) -> None:
        super().__init__()
        for name, value in (("state", state), ("channels", channels), ("width", width), ("depth", depth)):
            check_int(name, value)
        layers: list[nn.Module] = [nn.Linear(state, width), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.ReLU()]
        layers.append(nn.Linear(width, state * channels))
        self.net = nn.Sequential(*layers)
        self.shape = (state, channels)

    def forward(self, t: Tensor, z: Tensor, args: Any = None) -> Tensor:
        """`t` `[B]` (unused), `z` `[B, D]` -> `[B, D, C]`."""
        return torch.tanh(self.net(z)).unflatten(-1, self.shape)


class NeuralCDE(AbstractContinuousModel):
    """Neural CDE classifier/regressor: $\\dot z = f_\\theta(z)\\,\\dot X(t)$, read out at the last observation.

    **Default numerics.** `Tsit5()` with `PIDController(rtol=1e-3, atol=1e-4)` (see
    [`robust_options`][neuralct.models.ncde.robust_options] for why not the reference code's
    RK4 at the smallest observation gap); any `SolveOptions` works, e.g.
    `SolveOptions(RK4(), KnotToKnot())` for one RK4 step per observation gap, or
    `SolveOptions(RK4(), ConstantStep(min_gap))` for the reference numerics.

    Args:
        channels: data channels C of the batches.
        hidden: state size H.
        outputs: predictions per sample O.
        interpolation: the control path, `"limited_hermite"` (the default: smooth, causal, robust to
            close times), `"hermite"` (torchcde's), `"linear"`, `"rectilinear"` (online) or
            `"natural"` (the paper's; looks ahead).
        time_channel: prepend time as a channel of the control (the paper's choice; without it
            the model cannot see the timestamps, only the order of the values).
        count_channels: append cumulative observation counts ("observational intensity").
        width: units of each hidden layer of $f_\\theta$.
        depth: number of hidden layers of $f_\\theta$.

    Raises:
        InvalidInputError: a bad size or interpolation, or a rectilinear path without time.

    Example:
        >>> from neuralct.data import Series, collate
        >>> batch = collate([Series(torch.tensor([0.0, 0.4, 1.3]), torch.randn(3, 2)),
        ...                  Series(torch.tensor([0.1, 2.0]), torch.randn(2, 2))])
        >>> NeuralCDE(channels=2, hidden=16, outputs=3)(batch).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        channels: int,
        hidden: int,
        outputs: int,
        *,
        interpolation: str = "limited_hermite",
        time_channel: bool = True,
        count_channels: bool = False,
        width: int = 64,
        depth: int = 2,
    ) -> None:
        super().__init__()
        check_int("hidden", hidden)
        check_int("outputs", outputs)
        self.control = CDEControl(channels, interpolation, time_channel, count_channels)
        inputs = self.control.path_channels
        self.embed = nn.Linear(inputs, hidden)
        self.field = FinalTanh(hidden, inputs, width, depth)
        self.head = nn.Linear(hidden, outputs)

    def default_solve_options(self) -> SolveOptions:
        """`Tsit5()` with `PIDController(rtol=1e-3, atol=1e-4)`."""
        return robust_options()

    def initial_state(self, batch: IrregularBatch) -> Tensor:
        """`[B, H]` $z(t_0) = \\zeta_\\theta(X(t_0))$, a linear map of the control's first value."""
        x = self.control.path(batch).evaluate(batch.times[:, 0])
        return self.embed(x.to(self.embed.weight.dtype))

    def term(self, batch: IrregularBatch) -> ControlTerm:
        """$f_\\theta(z)\\,dX$ with `batch`'s control path."""
        return ControlTerm(self.field, self.control.path(batch))

    def readout(self, solution: Solution, batch: IrregularBatch) -> Tensor:
        """`[B, O]` a linear map of $z$ at each sample's last observation."""
        return self.head(last_observed(solution.ys, batch))


__all__ = ["CDEControl", "FinalTanh", "NeuralCDE", "robust_options"]
