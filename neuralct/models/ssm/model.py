"""State-space models over irregular series: a `DeepSSM` stack of S4D, LSSL or HOPE layers read
out at each sample's real positions.

One implementation serves the four registered names: `s4d`, `lssl` and `hope` are `deep_ssm`
with that layer (`SSMModel(layer=...)`), so the reading of an `IrregularBatch` (gaps, mask,
padding, readout) is written and tested once, and the three differ only in how a layer turns
its gaps into a discretisation:

- **Gaps.** The step of channel h at observation k is $\\Delta_h \\delta_k$: the learned step
  $\\Delta_h$ (per time unit of the data) times the sample's own gap $\\delta_k = t_k - t_{k-1}$;
  the first observation takes the sample's first gap (1 for a single observation), so a
  uniform sample stays uniform. S4D holds the input over each gap (zero-order hold, exact:
  two gaps of $\\delta$ with the same input are one gap of $2\\delta$), LSSL takes the bilinear
  transform at each gap, HOPE its own rule (the bilinear transform with the input's
  trapezoidal average).
- **Grids.** A batch whose samples are each uniform runs every layer as a convolution (FFT),
  each sample with its own kernel. S4D also runs as a convolution when each sample's gaps are
  whole multiples of its smallest gap (observations dropped from a regular sampler): every input
  is held over the lattice cells of its gap, which zero-order hold makes exact, and the outputs
  are read at the observations. Otherwise S4D runs a parallel scan over its diagonal
  recurrence (`linear_recurrence`), LSSL and HOPE a recurrence step by step (their state
  matrices are not diagonalisable in practice: HiPPO-LegS's eigenvectors have a condition
  number near $10^{11}$ at N = 16, HOPE's $A_c$ is one Jordan block).
- **Missing channels.** The layers read `[values, mask]` through a linear encoder: a missing
  value enters as 0 with its mask bit 0, so the model knows it is missing (no carrying
  forward). A position where nothing was observed still steps the state over its gap.
- **Padding** is never read: every layer is causal, the readout takes each sample's last real
  position (`"last"`) or the mean over its real positions (`"mean"`), and a batch norm takes
  its statistics over real positions only. A sample's output does not depend on its batch
  mates (in eval mode; a batch norm in training mode does, by design).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..._checks import check_choice, check_int, check_sizes
from ...data.series import IrregularBatch, check_batch
from ...errors import InvalidInputError
from ...solution import empty_stats
from ..base import AbstractSequenceModel, ModelOutput, SolveOptions
from .deep import DeepSSM
from .hope import HOPE
from .lssl import LSSL
from .s4d import S4D

LAYERS = ("s4d", "lssl", "hope")
READOUTS = ("last", "mean")


class SSMModel(AbstractSequenceModel):
    """A deep state-space model of an irregular batch; see the module docstring for how it reads one.

    Args:
        channels: input channels C (the layers see 2C: the values and the mask).
        hidden: width H of every layer.
        outputs: prediction size O.
        layer: `"s4d"`, `"lssl"` or `"hope"`.
        depth: number of residual blocks.
        state: state size N of each layer (S4D: even, N/2 complex modes; HOPE: its n Markov
            parameters).
        dropout: dropout probability in every block.
        norm: `"layer"` or `"batch"` normalisation.
        activation: `"gelu"`, `"relu"`, `"silu"` or `"tanh"` after each layer.
        readout: `"last"` (each sample's last real position) or `"mean"` (over its real positions).
        dt_min: smallest initial step $\\Delta_h$, per time unit of the data.
        dt_max: largest initial step.
        recurrence: S4D's per-step recurrence, `"scan"` (default) or `"sequential"`; S4D only.

    Raises:
        InvalidInputError: on a bad size, layer, readout or option of the stack or the layer.
    """

    def __init__(
        self,
        channels: int,
        hidden: int,
        outputs: int,
        *,
        layer: str = "s4d",
        depth: int = 2,
        state: int = 32,
        dropout: float = 0.0,
        norm: str = "layer",
        activation: str = "gelu",
        readout: str = "last",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        recurrence: str | None = None,
    ) -> None:
        super().__init__()
        check_sizes(channels=channels, hidden=hidden, outputs=outputs)
        check_int("state", state)
        check_choice("layer", layer, LAYERS)
        check_choice("readout", readout, READOUTS)
        if layer == "s4d" and state % 2:
            raise InvalidInputError(f"`state` must be even for layer 's4d' (N/2 complex modes); got {state}")
        if recurrence is not None and layer != "s4d":
            raise InvalidInputError(f"`recurrence` applies to layer 's4d' only; got it for layer {layer!r}")
        self.channels, self.layer = channels, layer
        factory = functools.partial(
            _make_layer, layer, state=state, dt_min=dt_min, dt_max=dt_max, recurrence=recurrence or "scan"
        )
        stack_options = {"pool": readout, "dropout": dropout, "norm": norm, "activation": activation}
        self.stack = DeepSSM(factory, 2 * channels, hidden, depth, outputs, **stack_options)

    def default_solve_options(self) -> SolveOptions | None:
        """`None`: the layers are discretised in closed form, nothing is solved."""
        return None

    def run(self, batch: IrregularBatch, options: SolveOptions | None = None) -> ModelOutput:
        """`[B, O]` predictions, with zero solve statistics.

        Raises:
            InvalidInputError: `options` given (the model solves nothing), or a batch with
                other than C channels.
        """
        if options is not None:
            raise InvalidInputError(f"SSMModel ({self.layer}) solves nothing, so `options` must be None")
        check_batch(batch, self.channels)
        u = torch.cat([batch.values, batch.mask.to(batch.values.dtype)], dim=-1)
        predictions = self.stack(u, {"dt": observation_gaps(batch)}, valid=batch.valid)
        return ModelOutput(predictions, empty_stats(batch.batch_size, batch.times.device))

    def layers(self) -> list[nn.Module]:
        """The state-space layer of each block, first to last (for memory profiles)."""
        return [block.layer for block in self.stack.blocks]


def observation_gaps(batch: IrregularBatch) -> Tensor:
    """`[B, T]` each observation's gap $t_k - t_{k-1}$, in the value dtype (taken in the time dtype).

    The first observation takes the sample's first gap (1 for a single observation) and the
    padding the same, so that a uniform sample's row is constant.
    """
    gaps = batch.times.diff(dim=1)
    first = gaps[:, :1] if gaps.shape[1] else batch.times.new_ones(batch.batch_size, 1)
    first = torch.where(batch.lengths[:, None] > 1, first, torch.ones_like(first))
    gaps = torch.cat([first, gaps], dim=1)
    return torch.where(batch.valid, gaps, first).to(batch.values.dtype)


def _make_layer(kind: str, width: int, *, state: int, dt_min: float, dt_max: float, recurrence: str) -> nn.Module:
    if kind == "s4d":
        return S4D(width, state, dt_min=dt_min, dt_max=dt_max, recurrence=recurrence)
    if kind == "lssl":
        return LSSL(width, state, dt_min=dt_min, dt_max=dt_max)
    return HOPE(width, state, dt_min=dt_min, dt_max=dt_max)


def _with_layer(layer: str) -> Callable[..., SSMModel]:
    """`SSMModel` with `layer` fixed: the factory of a registered name, whose signature (read by the
    registry to check options) is `SSMModel`'s without `layer`."""

    def build(channels: int, hidden: int, outputs: int, **options: Any) -> SSMModel:
        return SSMModel(channels, hidden, outputs, layer=layer, **options)

    signature = inspect.signature(SSMModel)
    build.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for p in signature.parameters.values() if p.name != "layer"]
    )
    build.__name__ = build.__qualname__ = f"{layer}_model"
    build.__doc__ = f"[`SSMModel`][neuralct.models.SSMModel] with `layer={layer!r}`; the other arguments are its own."
    return build


s4d_model = _with_layer("s4d")
lssl_model = _with_layer("lssl")
hope_model = _with_layer("hope")

__all__ = ["LAYERS", "READOUTS", "SSMModel", "hope_model", "lssl_model", "observation_gaps", "s4d_model"]
