"""Regression targets in their own units, with a network that works on standardised ones.

A forecasting dataset's targets can sit far from zero and outside the range of the training
inputs (CO2 in ppm, rising from one split to the next). `StandardizedTargets` wraps a model so that
its raw outputs are read as standardised targets, $\\hat y = \\mu + \\sigma\\,\\text{output}$, with
the mean and standard deviation of the training targets: the network's head works at unit scale,
while the loss, the MAE and the predictions are in the dataset's units.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..data.series import IrregularBatch
from ..errors import InvalidInputError
from ..models.base import AbstractSequenceModel, ModelOutput, SolveOptions


class StandardizedTargets(AbstractSequenceModel):
    """`model` with outputs mapped from standardised to the targets' units.

    Args:
        model: the network; its outputs are standardised targets.
        targets: the training targets `[B]` or `[B, H]` (floating) whose mean and standard
            deviation over all entries set the scale (std 1 when they are constant).

    Raises:
        InvalidInputError: `targets` not floating, empty or not finite.
    """

    def __init__(self, model: AbstractSequenceModel, targets: Tensor) -> None:
        super().__init__()
        if not targets.is_floating_point() or targets.numel() == 0 or not bool(torch.isfinite(targets).all()):
            raise InvalidInputError("`targets` must be a non-empty floating tensor of finite regression targets")
        self.model = model
        std = targets.double().std(correction=0)
        self.register_buffer("mean", targets.double().mean().to(targets.dtype))
        self.register_buffer("std", torch.where(std > 0, std, torch.ones_like(std)).to(targets.dtype))

    def run(self, batch: IrregularBatch, options: SolveOptions | None = None) -> ModelOutput:
        """The wrapped model's output with predictions `mean + std * output`."""
        output = self.model.run(batch, options)
        return ModelOutput(self.mean + self.std * output.predictions, output.stats)

    def default_solve_options(self) -> SolveOptions | None:
        """The wrapped model's numerics."""
        return self.model.default_solve_options()


__all__ = ["StandardizedTargets"]
