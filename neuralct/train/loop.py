"""One epoch of minibatch training of a sequence model on irregular series, and its evaluation.

Works with every [`AbstractSequenceModel`][neuralct.models.base.AbstractSequenceModel]: the model
returns predictions and the solve statistics of its forward pass, so each epoch reports what the
numerics cost (function evaluations per sample) next to loss and accuracy. The task follows the
targets: `long` class indices `[B]` are classification (cross-entropy on logits `[B, classes]`,
accuracy), floating targets are regression (mean squared error on predictions shaped like the
targets, or `[B, 1]` for targets `[B]`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.series import IrregularBatch
from ..errors import InvalidInputError
from ..models.base import AbstractSequenceModel, SolveOptions


@dataclass(frozen=True)
class EpochResult:
    """What one pass over a dataset measured.

    Args:
        loss: mean loss per sample (cross-entropy, or squared error for regression).
        accuracy: fraction of samples whose arg-max logit is the target (`None` for regression).
        vf_evals: mean over samples of the vector-field evaluations of the forward solves.
        seconds: wall-clock time of the pass.
        samples: number of samples seen.
    """

    loss: float
    accuracy: float | None
    vf_evals: float
    seconds: float
    samples: int


def minibatches(data: IrregularBatch, size: int, generator: torch.Generator | None = None) -> Iterator[IrregularBatch]:
    """Consecutive minibatches of `size` samples (the last may be smaller), shuffled when a
    `generator` is given; each is trimmed to its own longest series."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidInputError(f"`size` must be a positive int; got {size!r}")
    order = torch.arange(data.batch_size) if generator is None else torch.randperm(data.batch_size, generator=generator)
    for rows in order.split(size):
        yield data.select(rows)


def train_epoch(
    model: AbstractSequenceModel,
    data: IrregularBatch,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int,
    generator: torch.Generator,
    options: SolveOptions | None = None,
    clip_norm: float | None = None,
) -> EpochResult:
    """One shuffled pass of minibatch training over `data` (see the module docstring for the loss).

    Args:
        options: numerics for the forward solves (`None`: the model's defaults).
        clip_norm: clip the global gradient norm to this value before each step (`None`: no clipping).
    """
    _check_targets(data)
    model.train()
    totals = _Totals()
    for batch in minibatches(data, batch_size, generator):
        output = model.run(batch, options)
        loss = task_loss(output.predictions, batch.targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        totals.add(loss.detach(), output.predictions.detach(), batch.targets, output.stats.vf_evals)
    return totals.result()


def evaluate(
    model: AbstractSequenceModel, data: IrregularBatch, *, batch_size: int = 256, options: SolveOptions | None = None
) -> EpochResult:
    """Loss, accuracy and evaluations of `model` on `data` in eval mode, without gradients."""
    _check_targets(data)
    model.eval()
    totals = _Totals()
    with torch.no_grad():
        for batch in minibatches(data, batch_size):
            output = model.run(batch, options)
            loss = task_loss(output.predictions, batch.targets)
            totals.add(loss, output.predictions, batch.targets, output.stats.vf_evals)
    return totals.result()


def task_loss(predictions: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy for `long` class targets `[B]`, else mean squared error.

    Args:
        predictions: `[B, classes]` logits, or regression outputs shaped like `targets`
            (`[B, 1]` is accepted for targets `[B]`).
        targets: `[B]` class indices (`long`) or floating targets.
    """
    if targets.dtype == torch.long:
        return torch.nn.functional.cross_entropy(predictions, targets)
    if predictions.shape != targets.shape and predictions.shape == (*targets.shape, 1):
        predictions = predictions.squeeze(-1)
    if predictions.shape != targets.shape:
        expected, got = tuple(targets.shape), tuple(predictions.shape)
        raise InvalidInputError(f"regression predictions must be shaped like the targets {expected}; got {got}")
    return torch.nn.functional.mse_loss(predictions, targets.to(predictions.dtype))


class _Totals:
    """Running sums over the minibatches of one pass."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.loss = self.correct = self.evals = 0.0
        self.samples = 0
        self.regression = False

    def add(self, loss: Tensor, logits: Tensor, targets: Tensor, vf_evals: Tensor) -> None:
        count = targets.shape[0]
        self.loss += float(loss) * count
        if targets.dtype == torch.long:
            self.correct += float((logits.argmax(dim=-1) == targets).sum())
        else:
            self.regression = True
        self.evals += float(vf_evals.double().sum())
        self.samples += count

    def result(self) -> EpochResult:
        n = max(self.samples, 1)
        seconds = time.perf_counter() - self.start
        accuracy = None if self.regression else self.correct / n
        return EpochResult(self.loss / n, accuracy, self.evals / n, seconds, self.samples)


def _check_targets(data: IrregularBatch) -> None:
    targets = data.targets
    if targets is None or not (targets.dtype == torch.long and targets.ndim == 1 or targets.is_floating_point()):
        got = None if targets is None else f"{targets.dtype} {tuple(targets.shape)}"
        raise InvalidInputError(
            f"`data.targets` must be long class indices [B] (classification) or floating (regression); got {got}"
        )
