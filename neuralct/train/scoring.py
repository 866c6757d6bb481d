"""The samples of a minibatch that can be scored, and their loss (`task_loss`: cross-entropy for
class targets, mean squared error for regression).

A sample whose solve fails (`SolveFailed`: `max_steps` reached, a vanishing step, a non-finite
state) is counted and left out, and the rest of its minibatch is scored and trained on: the
failed samples are told apart by the solver's per-sample statuses (or, for a model whose failing
solve does not cover the whole minibatch row for row, by halving the minibatch), and the model is
run again on the others. A sample's result does not depend on its batch mates, so the others get
what they would alone, and no step is taken with a failed sample's (non-finite) loss. With
`strict=True` the first failure stops the pass instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.series import IrregularBatch
from ..errors import InvalidInputError, SolveFailed
from ..models.base import AbstractSequenceModel, ModelOutput, SolveOptions
from .distributed import Runner


@dataclass(frozen=True)
class Scored:
    """The samples of a batch whose solves succeeded, with their output and loss.

    Args:
        batch: those samples (`None` when every sample failed).
        output: the model's output on them (`None` likewise).
        loss: their mean loss (`None` likewise).
        failed: how many samples of the batch were left out.
        rows: `[B']` where those samples are in the batch.
    """

    batch: IrregularBatch | None
    output: ModelOutput | None
    loss: Tensor | None
    failed: int
    rows: Tensor | None = None

    @property
    def evals(self) -> Tensor:
        """`[B']` vector-field evaluations per scored sample."""
        return self.output.stats.vf_evals


def score(
    run: Runner, model: AbstractSequenceModel, batch: IrregularBatch, options: SolveOptions | None, *, strict: bool
) -> Scored:
    """`run(batch, options)` (the model's `run`, or its data-parallel wrapper), and when a solve
    fails, again on the samples whose solves succeed (see the module docstring).

    Raises:
        SolveFailed: with `strict`, or when the failing samples cannot be told apart (a failure
            that does not recur when the batch is run again, as with fresh noise).
    """
    failed = torch.zeros(batch.batch_size, dtype=torch.bool)
    while not bool(failed.all()):
        kept = batch if not bool(failed.any()) else batch.select(~failed.to(batch.lengths.device))
        try:
            output = run(kept, options)
        except SolveFailed as error:
            newly = torch.zeros(0, dtype=torch.bool) if strict else _failed(model, kept, options, error)
            if not bool(newly.any()):
                raise
            failed[~failed] = newly
            continue
        loss = task_loss(output.predictions, kept.targets)
        return Scored(kept, output, loss, int(failed.sum()), (~failed).nonzero().squeeze(1))
    return Scored(None, None, None, batch.batch_size)


def _failed(
    model: AbstractSequenceModel, batch: IrregularBatch, options: SolveOptions | None, error: SolveFailed
) -> Tensor:
    """`[B]` which samples of `batch` fail, given the `error` that running it raised: the
    statuses of a failing solve over the whole batch, row for row; else by halves of the batch."""
    status = getattr(error.solution, "status", None)
    if isinstance(status, Tensor) and status.shape == (batch.batch_size,):
        return (~error.solution.succeeded).cpu()  # a terminal event is a success too
    if batch.batch_size == 1:
        return torch.ones(1, dtype=torch.bool)
    halves = torch.arange(batch.batch_size).tensor_split(2)
    return torch.cat([_fails(model, batch.select(rows), options) for rows in halves])


def _fails(model: AbstractSequenceModel, batch: IrregularBatch, options: SolveOptions | None) -> Tensor:
    """`[B]` which samples of `batch` fail, running it without gradients."""
    with torch.no_grad():
        try:
            model.run(batch, options)
        except SolveFailed as error:
            return _failed(model, batch, options, error)
    return torch.zeros(batch.batch_size, dtype=torch.bool)


def task_loss(predictions: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy for `long` class targets `[B]`, else mean squared error.

    Args:
        predictions: `[B, classes]` logits, or regression outputs shaped like `targets`
            (`[B, 1]` is accepted for targets `[B]`).
        targets: `[B]` class indices (`long`) or floating targets.
    """
    if targets.dtype == torch.long:
        return torch.nn.functional.cross_entropy(predictions, targets)
    return torch.nn.functional.mse_loss(like_targets(predictions, targets), targets.to(predictions.dtype))


def like_targets(predictions: Tensor, targets: Tensor) -> Tensor:
    """Regression `predictions` shaped like `targets` (`[B, 1]` squeezed for targets `[B]`)."""
    if predictions.shape != targets.shape and predictions.shape == (*targets.shape, 1):
        predictions = predictions.squeeze(-1)
    if predictions.shape != targets.shape:
        expected, got = tuple(targets.shape), tuple(predictions.shape)
        raise InvalidInputError(f"regression predictions must be shaped like the targets {expected}; got {got}")
    return predictions
