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
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.series import IrregularBatch
from ..errors import InvalidInputError, NeuralCTError, SolveFailed
from ..models.base import AbstractSequenceModel, ModelOutput, SolveOptions
from .distributed import Runner, Workers


class TrainingFailed(NeuralCTError, RuntimeError):
    """A training step could not be taken: a solve of the forward pass failed (its message
    carries the per-sample solver statuses). The message names the batch."""


class TrainingDiverged(TrainingFailed):
    """The training loss of a batch became NaN or infinite."""


@dataclass(frozen=True)
class EpochResult:
    """What one pass over a dataset measured.

    Args:
        loss: mean loss per sample (cross-entropy, or squared error for regression).
        accuracy: fraction of samples whose arg-max logit is the target (`None` for regression).
        mae: mean absolute error per target entry (`None` for classification).
        vf_evals: mean over samples of the vector-field evaluations of the forward solves.
        seconds: wall-clock time of the pass.
        samples: number of samples seen.
        grad_norm: mean over the optimizer steps of the global gradient norm before clipping
            (`None` for an evaluation).
    """

    loss: float
    accuracy: float | None
    mae: float | None
    vf_evals: float
    seconds: float
    samples: int
    grad_norm: float | None = None


@dataclass(frozen=True)
class BatchReport:
    """Progress within a training epoch, after a minibatch's step (this process's samples).

    Args:
        batch: minibatches done, from 1.
        batches: minibatches in the epoch.
        loss: mean loss per sample so far in the epoch.
        accuracy: accuracy so far in the epoch (`None` for regression).
        vf_evals: vector-field evaluations per sample of this minibatch's forward pass.
    """

    batch: int
    batches: int
    loss: float
    accuracy: float | None
    vf_evals: float


def minibatches(data: IrregularBatch, size: int, generator: torch.Generator | None = None) -> Iterator[IrregularBatch]:
    """Consecutive minibatches of `size` samples (the last may be smaller), shuffled when a
    `generator` is given; each is trimmed to its own longest series."""
    for rows in _rows(data, size, generator):
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
    workers: Workers | None = None,
    on_batch: Callable[[BatchReport], None] | None = None,
) -> EpochResult:
    """One shuffled pass of minibatch training over `data` (see the module docstring for the loss).

    Args:
        options: numerics for the forward solves (`None`: the model's defaults).
        clip_norm: clip the global gradient norm to this value before each step (`None`: no clipping).
        workers: the training processes (`None`: this one alone). With several, each global
            minibatch of `batch_size` is shared out between them (see `neuralct.train.distributed`).
        on_batch: called after each step with the epoch's progress.

    Raises:
        TrainingDiverged: a minibatch's loss is NaN or infinite (no step is taken with it).
        TrainingFailed: a forward solve failed (on any process); the message names the minibatch
            and carries the solver's per-sample statuses.
    """
    _check_targets(data)
    workers = workers or Workers()
    run = workers.runner(model)
    model.train()
    totals = _Totals(data)
    batches = _rows(data, batch_size, generator)
    for index, rows in enumerate(batches, start=1):
        mine, weight = workers.share(rows)
        batch = data.select(mine)
        output, loss, failure = _forward(run, batch, options)
        if not workers.all_ok(failure is None):
            _raise_failure(workers.gather(failure), index, len(batches))
        optimizer.zero_grad(set_to_none=True)
        (loss * weight).backward()
        totals.add_gradient(_gradient_norm(model, clip_norm))
        optimizer.step()
        if weight > 0:
            totals.add(loss.detach(), output.predictions.detach(), batch.targets, output.stats.vf_evals)
        if on_batch is not None:
            evals = float(output.stats.vf_evals.double().mean())
            on_batch(BatchReport(index, len(batches), *totals.running(), evals))
    return totals.result(workers)


def evaluate(
    model: AbstractSequenceModel,
    data: IrregularBatch,
    *,
    batch_size: int = 256,
    options: SolveOptions | None = None,
    workers: Workers | None = None,
) -> EpochResult:
    """Loss, accuracy (or MAE) and evaluations of `model` on `data` in eval mode, without
    gradients; with several `workers`, each scores its share of every minibatch and the totals
    are summed over them."""
    _check_targets(data)
    workers = workers or Workers()
    model.eval()
    totals = _Totals(data)
    with torch.no_grad():
        for rows in _rows(data, batch_size):
            mine, weight = workers.share(rows)
            if weight == 0:
                continue
            batch = data.select(mine)
            output = model.run(batch, options)
            loss = task_loss(output.predictions, batch.targets)
            totals.add(loss, output.predictions, batch.targets, output.stats.vf_evals)
    return totals.result(workers)


def _rows(data: IrregularBatch, size: int, generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
    """The sample indices of each minibatch, shuffled when a `generator` is given."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidInputError(f"`size` must be a positive int; got {size!r}")
    order = torch.arange(data.batch_size) if generator is None else torch.randperm(data.batch_size, generator=generator)
    return order.split(size)


_Failure = tuple[type[TrainingFailed], str]


def _forward(
    run: Runner, batch: IrregularBatch, options: SolveOptions | None
) -> tuple[ModelOutput | None, Tensor | None, _Failure | None]:
    """The output and loss of `batch`, or the error to raise and why (a failed solve, a
    non-finite loss)."""
    try:
        output = run(batch, options)
    except SolveFailed as error:
        advice = "Pass throw=False"  # solve()'s own advice, which a training step cannot take
        message = "\n".join(line for line in str(error).splitlines() if not line.startswith(advice))
        return None, None, (TrainingFailed, f"the forward solve failed: {message}")
    loss = task_loss(output.predictions, batch.targets)
    if not bool(torch.isfinite(loss)):
        return output, loss, (TrainingDiverged, f"the training loss is {loss.item()}")
    return output, loss, None


def _gradient_norm(model: AbstractSequenceModel, clip_norm: float | None) -> float:
    """The global gradient norm before clipping; clips it to `clip_norm` when given."""
    if clip_norm is not None:
        return float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm))
    return float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None]))


def _raise_failure(failures: list[_Failure | None], index: int, batches: int) -> None:
    """Raise the first process's failure, naming the minibatch."""
    kind, reason = next(failure for failure in failures if failure is not None)
    raise kind(f"batch {index} of {batches}: {reason}")


def task_loss(predictions: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy for `long` class targets `[B]`, else mean squared error.

    Args:
        predictions: `[B, classes]` logits, or regression outputs shaped like `targets`
            (`[B, 1]` is accepted for targets `[B]`).
        targets: `[B]` class indices (`long`) or floating targets.
    """
    if targets.dtype == torch.long:
        return torch.nn.functional.cross_entropy(predictions, targets)
    return torch.nn.functional.mse_loss(_like_targets(predictions, targets), targets.to(predictions.dtype))


def _like_targets(predictions: Tensor, targets: Tensor) -> Tensor:
    """Regression `predictions` shaped like `targets` (`[B, 1]` squeezed for targets `[B]`)."""
    if predictions.shape != targets.shape and predictions.shape == (*targets.shape, 1):
        predictions = predictions.squeeze(-1)
    if predictions.shape != targets.shape:
        expected, got = tuple(targets.shape), tuple(predictions.shape)
        raise InvalidInputError(f"regression predictions must be shaped like the targets {expected}; got {got}")
    return predictions


class _Totals:
    """Running sums over the minibatches of one pass."""

    def __init__(self, data: IrregularBatch) -> None:
        self.start = time.perf_counter()
        keys = ("loss", "correct", "absolute", "entries", "evals", "samples", "gradient", "steps")
        self.sums = dict.fromkeys(keys, 0.0)
        self.regression = data.targets.dtype != torch.long

    def add(self, loss: Tensor, predictions: Tensor, targets: Tensor, vf_evals: Tensor) -> None:
        count = targets.shape[0]
        self.sums["loss"] += float(loss) * count
        if not self.regression:
            self.sums["correct"] += float((predictions.argmax(dim=-1) == targets).sum())
        else:
            error = _like_targets(predictions, targets) - targets.to(predictions.dtype)
            self.sums["absolute"] += float(error.abs().double().sum())
            self.sums["entries"] += error.numel()
        self.sums["evals"] += float(vf_evals.double().sum())
        self.sums["samples"] += count

    def add_gradient(self, norm: float) -> None:
        """One optimizer step's global gradient norm (the same on every process)."""
        self.sums["gradient"] += norm
        self.sums["steps"] += 1

    def running(self) -> tuple[float, float | None]:
        """This process's mean loss and accuracy so far."""
        n = max(self.sums["samples"], 1)
        return self.sums["loss"] / n, None if self.regression else self.sums["correct"] / n

    def result(self, workers: Workers) -> EpochResult:
        """The pass's result, summed over the processes."""
        sums = dict(zip(self.sums, workers.sum(list(self.sums.values()))))
        n = max(sums["samples"], 1)
        accuracy = None if self.regression else sums["correct"] / n
        mae = sums["absolute"] / max(sums["entries"], 1) if self.regression else None
        seconds = time.perf_counter() - self.start
        gradient = sums["gradient"] / sums["steps"] if sums["steps"] else None
        return EpochResult(sums["loss"] / n, accuracy, mae, sums["evals"] / n, seconds, int(sums["samples"]), gradient)


def _check_targets(data: IrregularBatch) -> None:
    targets = data.targets
    if targets is None or not (targets.dtype == torch.long and targets.ndim == 1 or targets.is_floating_point()):
        got = None if targets is None else f"{targets.dtype} {tuple(targets.shape)}"
        raise InvalidInputError(
            f"`data.targets` must be long class indices [B] (classification) or floating (regression); got {got}"
        )
