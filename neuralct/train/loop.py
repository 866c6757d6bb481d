"""One epoch of minibatch training of a sequence model on irregular series, and its evaluation.

Works with every [`AbstractSequenceModel`][neuralct.models.base.AbstractSequenceModel]: the model
returns predictions and the solve statistics of its forward pass, so each epoch reports what the
numerics cost (function evaluations per sample) next to loss and accuracy. The task follows the
targets: `long` class indices `[B]` are classification (cross-entropy on logits `[B, classes]`,
accuracy), floating targets are regression (mean squared error on predictions shaped like the
targets, or `[B, 1]` for targets `[B]`).

A sample whose solve fails is counted and left out, and the rest of its minibatch is scored and
trained on (see `neuralct.train.scoring`); with `strict=True` the first failure stops the pass.
With several training processes, a minibatch in which some process has no sample left is
skipped by all of them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_int
from ..data.batching import minibatch_indices, prepared_minibatches
from ..data.series import IrregularBatch
from ..errors import InvalidInputError, NeuralCTError, SolveFailed
from ..models.base import AbstractSequenceModel, SolveOptions
from .distributed import Runner, Workers
from .scoring import Scored, like_targets, score


class TrainingFailed(NeuralCTError, RuntimeError):
    """Training could not go on: in strict mode a solve of the forward pass failed (its message
    carries the per-sample solver statuses, and names the batch), or every sample of an epoch
    failed."""


class TrainingDiverged(TrainingFailed):
    """The training loss of a batch became NaN or infinite."""


@dataclass(frozen=True)
class EpochResult:
    """What one pass over a dataset measured.

    Args:
        loss: mean loss per scored sample (cross-entropy, or squared error for regression);
            NaN when no sample was scored.
        accuracy: fraction of scored samples whose arg-max logit is the target (`None` for
            regression).
        mae: mean absolute error per target entry (`None` for classification).
        vf_evals: mean over scored samples of the vector-field evaluations of the forward solves.
        seconds: wall-clock time of the pass.
        samples: number of samples scored (those whose solves succeeded).
        grad_norm: mean over the optimizer steps of the global gradient norm before clipping
            (`None` for an evaluation).
        failed: number of samples left out because their solve failed.
    """

    loss: float
    accuracy: float | None
    mae: float | None
    vf_evals: float
    seconds: float
    samples: int
    grad_norm: float | None = None
    failed: int = 0


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
    strict: bool = False,
    by_length: bool = True,
    prefetch: int = 0,
) -> EpochResult:
    """One shuffled pass of minibatch training over `data` (see the module docstring for the loss
    and for samples whose solve fails).

    Args:
        options: numerics for the forward solves (`None`: the model's defaults).
        clip_norm: clip the global gradient norm to this value before each step (`None`: no clipping).
        workers: the training processes (`None`: this one alone), which share out each global
            minibatch of `batch_size` (see `neuralct.train.distributed`).
        on_batch: called after each step with the epoch's progress.
        strict: stop at the first failed solve instead of leaving its samples out.
        by_length: group samples of similar lengths into minibatches, visited in random order
            (see [`minibatch_indices`][neuralct.data.batching.minibatch_indices]): a short
            series then does not pay for a long one's padding. `False`: a random permutation.
        prefetch: background processes that prepare the minibatches ahead (`data` on the CPU; see
            [`prepared_minibatches`][neuralct.data.batching.prepared_minibatches]). 0: none.

    Raises:
        TrainingDiverged: a minibatch's loss is NaN or infinite (no step is taken with it).
        TrainingFailed: with `strict`, a forward solve failed (on any process; the message names the
            minibatch and carries the per-sample statuses), or every sample of the epoch failed.
    """
    _check_targets(data)
    workers = workers or Workers()
    run = workers.runner(model)
    model.train()
    totals = _Totals(data)
    shares, prepared = _minibatches(data, batch_size, generator, by_length, workers, prefetch)
    for index, (share, batch) in enumerate(zip(shares, prepared), start=1):
        scored, failure = _forward(run, model, batch, options, strict)
        kept = scored.batch.batch_size if scored.batch is not None and share > 0 else 0
        failures, empty, total = workers.sum([failure is not None, scored.batch is None, kept])
        if failures:
            _raise_failure(workers.gather(failure), index, len(shares))
        totals.add_failed(scored.failed if share > 0 else 0)
        if not empty:  # a process with no sample left has no loss to take part in the step with
            _optimise(model, optimizer, scored.loss * (workers.world * kept / total), clip_norm, totals)
        if kept:
            totals.add(scored.loss.detach(), scored.output.predictions.detach(), scored.batch.targets, scored.evals)
        if on_batch is not None:
            evals = float(scored.evals.double().mean()) if scored.batch is not None else math.nan
            on_batch(BatchReport(index, len(shares), *totals.running(), evals))
    result = totals.result(workers)
    if result.samples == 0:
        raise TrainingFailed(f"the solves of all {result.failed} training samples failed")
    return result


def _minibatches(
    data: IrregularBatch,
    batch_size: int,
    generator: torch.Generator,
    by_length: bool,
    workers: Workers,
    prefetch: int,
) -> tuple[list[float], Iterator[IrregularBatch]]:
    """The epoch's minibatches of `data`: for each, the weight of this process's share of the
    global minibatch (0: it has none, see `Workers.share`) and, made lazily by `prefetch`
    processes ahead, the share itself."""
    shares = [workers.share(rows) for rows in _rows(data, batch_size, generator, by_length)]
    device = workers.device if prefetch else None
    prepared = prepared_minibatches(data, [mine for mine, _ in shares], prefetch, device)
    return [share for _, share in shares], prepared


def _optimise(
    model: AbstractSequenceModel,
    optimizer: torch.optim.Optimizer,
    loss: Tensor,
    clip_norm: float | None,
    totals: _Totals,
) -> None:
    """One optimiser step on `loss` (a 0-dim tensor), recording the gradient norm in `totals`."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    totals.add_gradient(_gradient_norm(model, clip_norm))
    optimizer.step()


def evaluate(
    model: AbstractSequenceModel,
    data: IrregularBatch,
    *,
    batch_size: int = 256,
    options: SolveOptions | None = None,
    workers: Workers | None = None,
    strict: bool = False,
    on_batch: Callable[[BatchReport], None] | None = None,
) -> EpochResult:
    """Loss, accuracy (or MAE) and evaluations of `model` on `data` in eval mode, without
    gradients; with several `workers`, each scores its share of every minibatch and the totals
    are summed over them. Samples whose solve fails are counted in `failed` and the others scored,
    unless `strict`.

    Args:
        on_batch: called after each minibatch with the pass's progress (this process's running
            loss and accuracy, and the minibatch's evaluations per sample: NaN when none of its
            samples was scored here), e.g. a `neuralct.train.progress.PassBar`.

    Raises:
        SolveFailed: with `strict`, the first failed solve.
    """
    _check_targets(data)
    workers = workers or Workers()
    model.eval()
    totals = _Totals(data)
    batches = _rows(data, batch_size)
    with torch.no_grad():
        for index, rows in enumerate(batches, start=1):
            mine, share = workers.share(rows)
            evals = math.nan
            if share > 0:
                scored = score(model.run, model, data.select(mine), options, strict=strict)
                totals.add_failed(scored.failed)
                if scored.batch is not None:
                    totals.add(scored.loss, scored.output.predictions, scored.batch.targets, scored.evals)
                    evals = float(scored.evals.double().mean())
            if on_batch is not None:
                on_batch(BatchReport(index, len(batches), *totals.running(), evals))
    return totals.result(workers)


def _rows(
    data: IrregularBatch, size: int, generator: torch.Generator | None = None, by_length: bool = False
) -> tuple[Tensor, ...]:
    """The sample indices of each minibatch, shuffled when a `generator` is given, grouped by
    length with `by_length` (see `neuralct.data.batching.minibatch_indices`)."""
    check_int("size", size)
    return minibatch_indices(data.lengths, size, generator, by_length=by_length)


_Failure = tuple[type[TrainingFailed], str]


def _forward(
    run: Runner, model: AbstractSequenceModel, batch: IrregularBatch, options: SolveOptions | None, strict: bool
) -> tuple[Scored, _Failure | None]:
    """The scored samples of `batch`, and the error to raise and why (in strict mode a failed
    solve; a non-finite loss)."""
    try:
        scored = score(run, model, batch, options, strict=strict)
    except SolveFailed as error:
        advice = "Pass throw=False"  # solve()'s own advice, which a training step cannot take
        message = "\n".join(line for line in str(error).splitlines() if not line.startswith(advice))
        return Scored(None, None, None, 0), (TrainingFailed, f"the forward solve failed: {message}")
    if scored.loss is not None and not bool(torch.isfinite(scored.loss)):
        return scored, (TrainingDiverged, f"the training loss is {scored.loss.item()}")
    return scored, None


def _gradient_norm(model: AbstractSequenceModel, clip_norm: float | None) -> float:
    """The global gradient norm before clipping; clips it to `clip_norm` when given."""
    if clip_norm is not None:
        return float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm))
    return float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None]))


def _raise_failure(failures: list[_Failure | None], index: int, batches: int) -> None:
    """Raise the first process's failure, naming the minibatch."""
    kind, reason = next(failure for failure in failures if failure is not None)
    raise kind(f"batch {index} of {batches}: {reason}")


class _Totals:
    """Running sums over the minibatches of one pass."""

    def __init__(self, data: IrregularBatch) -> None:
        self.start = time.perf_counter()
        keys = ("loss", "correct", "absolute", "entries", "evals", "samples", "gradient", "steps", "failed")
        self.sums = dict.fromkeys(keys, 0.0)
        self.regression = data.targets.dtype != torch.long

    def add(self, loss: Tensor, predictions: Tensor, targets: Tensor, vf_evals: Tensor) -> None:
        count = targets.shape[0]
        self.sums["loss"] += float(loss) * count
        if not self.regression:
            self.sums["correct"] += float((predictions.argmax(dim=-1) == targets).sum())
        else:
            error = like_targets(predictions, targets) - targets.to(predictions.dtype)
            self.sums["absolute"] += float(error.abs().double().sum())
            self.sums["entries"] += error.numel()
        self.sums["evals"] += float(vf_evals.double().sum())
        self.sums["samples"] += count

    def add_failed(self, count: int) -> None:
        """Samples left out because their solve failed."""
        self.sums["failed"] += count

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
        n = sums["samples"] or math.nan  # no sample scored: NaN metrics, never a best loss
        accuracy = None if self.regression else sums["correct"] / n
        mae = sums["absolute"] / (sums["entries"] or math.nan) if self.regression else None
        seconds = time.perf_counter() - self.start
        gradient = sums["gradient"] / sums["steps"] if sums["steps"] else None
        samples, failed = int(sums["samples"]), int(sums["failed"])
        return EpochResult(sums["loss"] / n, accuracy, mae, sums["evals"] / n, seconds, samples, gradient, failed)


def _check_targets(data: IrregularBatch) -> None:
    targets = data.targets
    if targets is None or not (targets.dtype == torch.long and targets.ndim == 1 or targets.is_floating_point()):
        got = None if targets is None else f"{targets.dtype} {tuple(targets.shape)}"
        raise InvalidInputError(
            f"`data.targets` must be long class indices [B] (classification) or floating (regression); got {got}"
        )
