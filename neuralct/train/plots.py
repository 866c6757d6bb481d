"""Figures of a run folder, drawn from its `metrics.jsonl` (matplotlib, no display needed).

- `learning_curves.png`: training and validation loss, and validation accuracy for classification;
- `vf_evals.png`: vector-field evaluations per sample of the training forward passes, per epoch
  (how the cost of the numerics changes as the model trains), and the mean global gradient norm
  per optimizer step;
- `predictions.png`: the trained model on the test split. Classification: a few test series
  (observed points on their own times) titled with the true and the predicted class and its
  probability. Regression: predicted against true targets, and for a forecast horizon a few
  series' true and predicted horizons.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..data.series import IrregularBatch  # noqa: E402
from ..errors import InvalidInputError  # noqa: E402
from ..models.base import AbstractSequenceModel, SolveOptions  # noqa: E402
from .scoring import score  # noqa: E402


def plot_run(run_dir: Path | str) -> list[Path]:
    """Draw the figures of `run_dir` from its metrics; returns the PNG paths written."""
    run_dir = Path(run_dir)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [_learning_curves(rows, run_dir / "learning_curves.png"), _evaluations(rows, run_dir / "vf_evals.png")]


def _learning_curves(rows: list[dict], path: Path) -> Path:
    epochs = [row["epoch"] for row in rows]
    classification = rows[0]["val_accuracy"] is not None
    figure, axes = plt.subplots(1, 2 if classification else 1, figsize=(9 if classification else 5, 3.5), squeeze=False)
    axes[0, 0].plot(epochs, [row["train_loss"] for row in rows], label="train")
    axes[0, 0].plot(epochs, [row["val_loss"] for row in rows], label="validation")
    axes[0, 0].set(xlabel="epoch", ylabel="loss", yscale="log")
    axes[0, 0].legend()
    if classification:
        axes[0, 1].plot(epochs, [row["train_accuracy"] for row in rows], label="train")
        axes[0, 1].plot(epochs, [row["val_accuracy"] for row in rows], label="validation")
        axes[0, 1].set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
        axes[0, 1].legend()
    return _save(figure, path)


def _evaluations(rows: list[dict], path: Path) -> Path:
    epochs = [row["epoch"] for row in rows]
    norms = [row.get("grad_norm") for row in rows]
    monitored = all(norm is not None for norm in norms)
    figure, axes = plt.subplots(1, 2 if monitored else 1, figsize=(9 if monitored else 5, 3.5), squeeze=False)
    axes[0, 0].plot(epochs, [row["vf_evals"] for row in rows], marker=".")
    axes[0, 0].set(xlabel="epoch", ylabel="evaluations per sample", ylim=(0, None))
    if monitored:
        axes[0, 1].plot(epochs, norms, marker=".")
        axes[0, 1].set(xlabel="epoch", ylabel="gradient norm (mean per step)", yscale="log")
    return _save(figure, path)


def plot_predictions(
    model: AbstractSequenceModel,
    test: IrregularBatch,
    path: Path,
    options: SolveOptions | None = None,
    *,
    series: int = 4,
    samples: int = 256,
) -> Path:
    """Draw `predictions.png` for `samples` test series spread evenly over the split (`series`
    of them, also evenly spread, in detail: a split sorted by class shows several classes); a
    series whose solve fails is left out.

    Raises:
        InvalidInputError: the solves of all the chosen series fail.
    """
    chosen = _spread(test.batch_size, samples)
    model.eval()
    with torch.no_grad():
        scored = score(model.run, model, test.select(chosen), options, strict=False)
    if scored.batch is None:
        raise InvalidInputError(f"no test series to plot: the solves of all {scored.failed} chosen ones fail")
    predictions = scored.output.predictions.double().cpu()
    test = test.to("cpu").select(chosen[scored.rows])  # moved whole: a subset would be checked as a dataset
    if test.targets.dtype == torch.long:
        return _classified_series(test, predictions.softmax(dim=-1), path, series)
    return _regression(test.targets.double().reshape(test.batch_size, -1), predictions, path, series)


def _classified_series(test: IrregularBatch, probabilities: torch.Tensor, path: Path, series: int) -> Path:
    shown = _spread(test.batch_size, series).tolist()
    figure, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3), squeeze=False, sharey=True)
    for b, axis in zip(shown, axes[0]):
        length = int(test.lengths[b])
        times, values, mask = test.times[b, :length], test.values[b, :length], test.mask[b, :length]
        for c in range(test.channels):
            seen = mask[:, c]
            axis.plot(times[seen], values[seen, c], marker=".", markersize=3, linewidth=0.8)
        truth, guess = int(test.targets[b]), int(probabilities[b].argmax())
        colour = "tab:green" if truth == guess else "tab:red"
        axis.set_title(f"true {truth} · predicted {guess} ({float(probabilities[b, guess]):.2f})", color=colour)
        axis.set(xlabel="time")
    axes[0, 0].set(ylabel="observed values (standardised)")
    return _save(figure, path)


def _regression(truth: torch.Tensor, predictions: torch.Tensor, path: Path, series: int) -> Path:
    predictions = predictions.reshape(truth.shape)
    horizon = truth.shape[1] > 1
    figure, axes = plt.subplots(1, 2 if horizon else 1, figsize=(9 if horizon else 4.5, 3.8), squeeze=False)
    axis = axes[0, 0]
    axis.scatter(truth.flatten(), predictions.flatten(), s=4, alpha=0.5)
    low, high = float(truth.min()), float(truth.max())
    axis.plot([low, high], [low, high], color="black", linewidth=0.8, label="prediction = truth")
    axis.set(xlabel="true target", ylabel="predicted target")
    axis.legend()
    if horizon:
        steps = range(1, truth.shape[1] + 1)
        for b in _spread(truth.shape[0], series).tolist():
            line = axes[0, 1].plot(steps, truth[b], linewidth=1.2)[0]
            axes[0, 1].plot(steps, predictions[b], linestyle="--", color=line.get_color())
        axes[0, 1].set(xlabel="forecast step", ylabel="target (solid: true, dashed: predicted)")
    return _save(figure, path)


def _spread(total: int, count: int) -> torch.Tensor:
    """Up to `count` indices in `[0, total)`, evenly spread, first and last included."""
    return torch.linspace(0, total - 1, min(count, total)).round().long().unique()


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
