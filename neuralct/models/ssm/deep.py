"""A deep sequence model of stacked state-space layers: encoder, residual blocks, pooled head.

The stack is independent of the layer: any module mapping `[B, L, H] -> [B, L, H_out]` plugs in
through a factory (LSSL, HOPE, a diagonal SSM). Each block is, with pre-norm (the default),

$x \\leftarrow x + \\mathrm{Drop}(\\mathrm{Mix}(\\mathrm{Drop}(\\mathrm{GELU}(\\mathrm{Layer}(\\mathrm{LN}(x))))))$

and with post-norm $x \\leftarrow \\mathrm{LN}(x + \\dots\\mathrm{Layer}(x)\\dots)$. The norm may be a
batch norm instead (statistics over the real positions only) and the GELU another activation. `Mix` is the
position-wise linear map $H_{out} \\to H$ (or a gated linear unit $H_{out} \\to 2H \\to H$).
$H_{out}$ is the layer's `d_output` attribute when it has one (LSSL with M channels has
$H \\cdot M$), else H.

Reference: Gu et al., "Combining Recurrent, Convolutional, and Continuous-time Models with
Linear State-Space Layers", NeurIPS 2021 (the LSSL deep model).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from ..._checks import check_choice, check_number, check_sizes, describe
from ...errors import InvalidInputError

POOLS = ("mean", "last", "none")
MIXES = ("linear", "glu")
NORMS = ("layer", "batch")
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": nn.functional.gelu,
    "relu": nn.functional.relu,
    "silu": nn.functional.silu,
    "tanh": torch.tanh,
}


def make_norm(norm: str, width: int) -> nn.Module:
    """`nn.LayerNorm` (`"layer"`) or `nn.BatchNorm1d` (`"batch"`) over `width` features; see `normalise`."""
    return nn.LayerNorm(width) if norm == "layer" else nn.BatchNorm1d(width)


def normalise(norm: nn.Module, x: Tensor, valid: Tensor | None) -> Tensor:
    """`[B, L, H]` `x` through `norm`; a batch norm takes its statistics over the positions where
    `valid` `[B, L]` is True only (padding would bias them), and leaves 0 at the others."""
    if not isinstance(norm, nn.BatchNorm1d):
        return norm(x)
    if valid is None:
        return norm(x.flatten(0, 1)).unflatten(0, x.shape[:2])
    return x.new_zeros(x.shape).index_put((valid,), norm(x[valid]))


class SSMBlock(nn.Module):
    """One residual block around a sequence layer: norm, layer, GELU, dropout, mixing, dropout.

    Args:
        layer: maps `[B, L, H] -> [B, L, H_out]`; `H_out = layer.d_output` if defined, else H.
        d_model: the width H.
        dropout: dropout probability after the activation and after the mixing.
        prenorm: LayerNorm before the layer (True) or after the residual sum (False).
        mix: `"linear"` ($H_{out} \\to H$) or `"glu"` ($H_{out} \\to 2H$, then a GLU).
        norm: `"layer"` or `"batch"` (see `normalise`).
        activation: a name of `ACTIVATIONS`.
    """

    def __init__(
        self,
        layer: nn.Module,
        d_model: int,
        *,
        dropout: float,
        prenorm: bool,
        mix: str,
        norm: str = "layer",
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        d_layer = int(getattr(layer, "d_output", d_model))
        self.layer = layer
        self.prenorm = prenorm
        self.activation = ACTIVATIONS[activation]
        self.norm = make_norm(norm, d_model)
        self.drop = nn.Dropout(dropout)
        self.mix = (
            nn.Linear(d_layer, d_model)
            if mix == "linear"
            else nn.Sequential(nn.Linear(d_layer, 2 * d_model), nn.GLU(dim=-1))
        )

    def forward(self, x: Tensor, layer_kwargs: Mapping[str, object], valid: Tensor | None = None) -> Tensor:
        """`[B, L, H] -> [B, L, H]`; `layer_kwargs` go to the layer's forward, `valid` `[B, L]` to a batch norm."""
        z = normalise(self.norm, x, valid) if self.prenorm else x
        z = self.drop(self.activation(self.layer(z, **layer_kwargs)))
        x = x + self.drop(self.mix(z))
        return x if self.prenorm else normalise(self.norm, x, valid)


class DeepSSM(nn.Module):
    """Linear encoder, `n_layers` residual blocks of a pluggable layer, pooled linear head.

    Args:
        layer_factory: called with the width H (`d_model`) once per block; returns a module
            mapping `[B, L, H] -> [B, L, H_out]` (see the module docstring).
        d_input: input channels C.
        d_model: width H.
        n_layers: number of blocks, >= 1.
        d_output: outputs per prediction (classes for classification, targets for regression).
        pool: `"mean"` over time, `"last"` step, `"none"` (one prediction per step, `[B, L, d_output]`),
            or a `slice` of steps to average over (e.g. `slice(64, None)`: only the noise part).
        dropout: dropout probability in every block.
        prenorm: pre-LayerNorm (True; a final LayerNorm then precedes the head) or post-LayerNorm.
        mix: `"linear"` or `"glu"` position-wise mixing in each block.
        norm: `"layer"` or `"batch"` normalisation in every block (and before the head).
        activation: the nonlinearity after each layer, a name of `ACTIVATIONS`.

    Raises:
        InvalidInputError: on a bad size, pool, dropout, mix, norm or activation.
    """

    def __init__(
        self,
        layer_factory: Callable[[int], nn.Module],
        d_input: int,
        d_model: int,
        n_layers: int,
        d_output: int,
        *,
        pool: str | slice = "mean",
        dropout: float = 0.0,
        prenorm: bool = True,
        mix: str = "linear",
        norm: str = "layer",
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        check_sizes(d_input=d_input, d_model=d_model, n_layers=n_layers, d_output=d_output)
        if not (isinstance(pool, slice) or pool in POOLS):
            raise InvalidInputError(f"`pool` must be one of {POOLS} or a slice of steps; got {describe(pool)}")
        check_number("dropout", dropout, 0.0, 1.0, open_high=True)
        check_choice("mix", mix, MIXES)
        check_choice("norm", norm, NORMS)
        check_choice("activation", activation, ACTIVATIONS)
        self.pool = pool
        self.encoder = nn.Linear(d_input, d_model)
        self.blocks = nn.ModuleList(
            SSMBlock(
                layer_factory(d_model),
                d_model,
                dropout=dropout,
                prenorm=prenorm,
                mix=mix,
                norm=norm,
                activation=activation,
            )
            for _ in range(n_layers)
        )
        self.final_norm = make_norm(norm, d_model) if prenorm else nn.Identity()
        self.head = nn.Linear(d_model, d_output)

    def forward(
        self, u: Tensor, layer_kwargs: Mapping[str, object] | None = None, *, valid: Tensor | None = None
    ) -> Tensor:
        """Run the stack.

        Args:
            u: `[B, L, C]` input sequences.
            layer_kwargs: keyword arguments passed to every layer's forward (e.g. LSSL's
                `dt_scale=0.5` to run at twice the training sampling rate).
            valid: `[B, L]` True at each sample's real positions (`None`: all), a prefix of each
                row. `"last"` then pools each sample's last real position, `"mean"` its real
                positions, a batch norm takes statistics over them; the layers must be causal,
                so that no real position reads the padding.

        Returns:
            `[B, d_output]` when pooled, `[B, L, d_output]` when `pool="none"`.

        Raises:
            InvalidInputError: if `u` is not `[B, L, C]` with C = `d_input`, or a slice pools no step.
        """
        if not isinstance(u, Tensor) or u.ndim != 3 or u.shape[-1] != self.encoder.in_features:
            raise InvalidInputError(f"`u` must be a tensor [B, L, {self.encoder.in_features}]; got {describe(u)}")
        x = self.encoder(u)
        for block in self.blocks:
            x = block(x, layer_kwargs or {}, valid)
        return self.head(self._pool(normalise(self.final_norm, x, valid), valid))

    def _pool(self, x: Tensor, valid: Tensor | None) -> Tensor:
        if self.pool == "none":
            return x
        if self.pool == "last":
            return x[:, -1] if valid is None else x[torch.arange(x.shape[0]), valid.sum(dim=1) - 1]
        if self.pool == "mean" and valid is not None:
            weights = valid.to(x.dtype)[..., None]
            return (x * weights).sum(dim=1) / weights.sum(dim=1)
        if self.pool == "mean":
            return x.mean(dim=1)
        part = x[:, self.pool]
        if part.shape[1] == 0:
            raise InvalidInputError(f"`pool` {self.pool} selects no step of a length-{x.shape[1]} sequence")
        return part.mean(dim=1)


def param_groups(
    model: nn.Module, lr: float, *, lr_ssm: float = 1e-4, lr_dt: float = 1e-3, weight_decay: float = 0.0
) -> list[dict]:
    """Optimizer parameter groups with their own learning rates for the state-space parameters.

    A submodule that defines `special_parameters() -> {"ssm": [...], "dt": [...]}` (as
    [`LSSL`][neuralct.models.ssm.lssl.LSSL] does: A and B under `"ssm"`, $\\log \\Delta$ under `"dt"`)
    has those parameters trained at `lr_ssm` and `lr_dt` without weight decay; every other
    parameter is trained at `lr` with `weight_decay`. Empty groups are left out.

    Args:
        model: any module, e.g. a [`DeepSSM`][neuralct.models.ssm.deep.DeepSSM].
        lr: learning rate of the ordinary parameters.
        lr_ssm: learning rate of A and B (the reference code's 1e-4).
        lr_dt: learning rate of $\\log \\Delta$ (1e-3).
        weight_decay: weight decay of the ordinary parameters.

    Returns:
        A list of `{"params", "lr", "weight_decay"}` dicts for a `torch.optim` optimizer.
    """
    special: dict[str, list[nn.Parameter]] = {"ssm": [], "dt": []}
    for module in model.modules():
        if callable(getattr(module, "special_parameters", None)):
            for group, params in module.special_parameters().items():
                special[group].extend(params)
    taken = {id(p) for params in special.values() for p in params}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in taken], "lr": lr, "weight_decay": weight_decay},
        {"params": special["ssm"], "lr": lr_ssm, "weight_decay": 0.0},
        {"params": special["dt"], "lr": lr_dt, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]
