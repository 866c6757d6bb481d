"""Figures of a run folder, drawn from its `metrics.jsonl` (matplotlib, no display needed), each
titled with the run's model, data and missing rate (`run_title`), epochs as whole numbers and
log scales labelled with plain numbers (`readable_log_axis`).

- `learning_curves.png`: training and validation loss, and validation accuracy for classification;
- `vf_evals.png`: vector-field evaluations per sample of the training forward passes, per epoch
  (how the cost of the numerics changes as the model trains), and the mean global gradient norm
  per optimizer step;
- `predictions.png`: the trained model on the test split. Classification: a few test series
  (observed points on their own times, one colour per named channel) titled with the true and the
  predicted class label and its probability. Regression: predicted against true targets (in the
  target's units where given), and for a forecast horizon a few series' true and predicted horizons.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..data.series import IrregularBatch
from ..errors import InvalidInputError
from ..models.base import AbstractSequenceModel, SolveOptions
from .scoring import score


def plot_run(run_dir: Path | str) -> list[Path]:
    """Draw the figures of `run_dir` from its metrics, titled with the run's model, data and
    missing rate from its `config.json` (when there is one); returns the PNG paths written."""
    run_dir = Path(run_dir)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    config_path = run_dir / "config.json"
    title = run_title(json.loads(config_path.read_text())) if config_path.exists() else None
    return [
        _learning_curves(rows, run_dir / "learning_curves.png", title),
        _evaluations(rows, run_dir / "vf_evals.png", title),
    ]


def run_title(config: dict) -> str:
    """`"<model> on <data>, <missing>% of observations dropped"` from a run's `config.json`
    mapping: the data is the `dataset` name, or the file name of `data` for a run on a user file."""
    data = Path(config["data"]).name if config.get("data") else config.get("dataset", "?")
    missing = config.get("missing")
    missing = float(missing if missing is not None else 0.0 if config.get("data") else 0.3)  # FitConfig.missing_rate
    dropped = f"{missing:.0%} of observations dropped" if missing else "no observation dropped"
    return f"{config.get('model', '?')} on {data}, {dropped}"


def readable_log_axis(axes: Axes, which: str = "y") -> None:
    """Label a log-scaled axis of `axes` with plain numbers (0.6, 20, 1e+05) instead of powers
    ($6 \\times 10^{-1}$); within a decade, where at most one major tick shows, label the minor
    ticks too (all of them under a factor 3, else those at 2, 3 and 5 times a power of ten).
    Call it after the data and the limits are set."""
    axis = axes.yaxis if which == "y" else axes.xaxis
    low, high = sorted(axes.get_ylim() if which == "y" else axes.get_xlim())
    span = high / low if low > 0 else math.inf

    def minor(value: float, _: int) -> str:
        mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
        return f"{value:.3g}" if span < 3 or (span < 10 and mantissa in (2, 3, 5)) else ""

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def _epoch_axes(axes: Axes, ylabel: str, log: bool) -> None:
    """Epochs as whole numbers on x; `ylabel`; a log scale with plain tick labels when `log`."""
    axes.set(xlabel="epoch", ylabel=ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if log:
        axes.set_yscale("log")
        readable_log_axis(axes)


def _learning_curves(rows: list[dict], path: Path, title: str | None) -> Path:
    epochs = [row["epoch"] for row in rows]
    classification = rows[0]["val_accuracy"] is not None
    figure, axes = new_figure(
        1, 2 if classification else 1, figsize=(9 if classification else 5, 3.8), squeeze=False, layout="constrained"
    )
    for index, (metric, ylabel) in enumerate((("loss", "loss"), ("accuracy", "accuracy"))[: 1 + classification]):
        axes[0, index].plot(epochs, [row[f"train_{metric}"] for row in rows], marker=".", label="train")
        axes[0, index].plot(epochs, [row[f"val_{metric}"] for row in rows], marker=".", label="validation")
        if metric == "accuracy":
            axes[0, index].set_ylim(0, 1)
        _epoch_axes(axes[0, index], ylabel, log=metric == "loss")
        axes[0, index].legend()
    return _save(figure, path, title)


def _evaluations(rows: list[dict], path: Path, title: str | None) -> Path:
    epochs = [row["epoch"] for row in rows]
    norms = [row.get("grad_norm") for row in rows]
    monitored = all(norm is not None for norm in norms)
    figure, axes = new_figure(
        1, 2 if monitored else 1, figsize=(9 if monitored else 5, 3.8), squeeze=False, layout="constrained"
    )
    axes[0, 0].plot(epochs, [row["vf_evals"] for row in rows], marker=".")
    axes[0, 0].set_ylim(0, None)
    _epoch_axes(axes[0, 0], "vector-field evaluations per sample", log=False)
    if monitored:
        axes[0, 1].plot(epochs, norms, marker=".")
        _epoch_axes(axes[0, 1], "gradient norm (mean per step)", log=True)
    return _save(figure, path, title)


def plot_predictions(
    model: AbstractSequenceModel,
    test: IrregularBatch,
    path: Path,
    options: SolveOptions | None = None,
    *,
    series: int = 4,
    samples: int = 256,
    classes: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    units: str | None = None,
    title: str | None = None,
) -> Path:
    """Draw `predictions.png` for `samples` test series spread evenly over the split (`series`
    of them, also evenly spread, in detail: a split sorted by class shows several classes); a
    series whose solve fails is left out.

    Args:
        model: the trained model.
        test: the test split, `[B, T, C]` values.
        path: the PNG to write.
        options: the numerics to run the model under (default: its own).
        series: how many series to draw in detail.
        samples: how many series to predict.
        classes: the label of each class index (e.g. a user file's `"walk"` or `"52"`);
            default the indices.
        channels: the name of each of the C channels (e.g. a CSV header); default
            `channel 0`, `channel 1`, ...
        units: the units of a regression target, shown on its axes.
        title: the figure's title (e.g. `run_title(config)`).

    Raises:
        InvalidInputError: the solves of all the chosen series fail, or `classes` / `channels`
            of the wrong length.
    """
    _check_names("channels", channels, test.channels)
    chosen = _spread(test.batch_size, samples)
    model.eval()
    with torch.no_grad():
        scored = score(model.run, model, test.select(chosen), options, strict=False)
    if scored.batch is None:
        raise InvalidInputError(f"no test series to plot: the solves of all {scored.failed} chosen ones fail")
    predictions = scored.output.predictions.double().cpu()
    test = test.to("cpu").select(chosen[scored.rows])  # moved whole: a subset would be checked as a dataset
    names = [f"channel {c}" for c in range(test.channels)] if channels is None else list(channels)
    if test.targets.dtype == torch.long:
        probabilities = predictions.softmax(dim=-1)
        _check_names("classes", classes, probabilities.shape[-1])
        labels = [str(k) for k in range(probabilities.shape[-1])] if classes is None else list(classes)
        return _classified_series(test, probabilities, path, series, labels, names, title)
    unit = f" ({units})" if units else ""
    return _regression(test.targets.double().reshape(test.batch_size, -1), predictions, path, series, unit, title)


def _check_names(name: str, given: Sequence[str] | None, count: int) -> None:
    if given is not None and (isinstance(given, str) or len(given) != count):
        raise InvalidInputError(f"`{name}` must name each of the {count} {name}; got {given!r}")


def _classified_series(
    test: IrregularBatch,
    probabilities: torch.Tensor,
    path: Path,
    series: int,
    classes: list[str],
    channels: list[str],
    title: str | None,
) -> Path:
    shown = _spread(test.batch_size, series).tolist()
    figure, axes = new_figure(
        1, len(shown), figsize=(3.4 * len(shown), 3.6), squeeze=False, sharey=True, layout="constrained"
    )
    for b, axis in zip(shown, axes[0]):
        length = int(test.lengths[b])
        times, values, mask = test.times[b, :length], test.values[b, :length], test.mask[b, :length]
        for c in range(test.channels):
            seen = mask[:, c]
            axis.plot(times[seen], values[seen, c], marker=".", markersize=3, linewidth=0.8, label=channels[c])
        truth, guess = int(test.targets[b]), int(probabilities[b].argmax())
        colour = "tab:green" if truth == guess else "tab:red"
        axis.set_title(
            f"true {classes[truth]}\npredicted {classes[guess]} (p = {float(probabilities[b, guess]):.2f})",
            color=colour,
            fontsize="medium",
        )
        axis.set(xlabel="time")
    axes[0, 0].set(ylabel="observed values (as the model reads them)")
    # One legend for the figure: every panel draws the same channels in the same colours.
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", fontsize="small", title="channel")
    return _save(figure, path, title)


def _regression(
    truth: torch.Tensor, predictions: torch.Tensor, path: Path, series: int, unit: str, title: str | None
) -> Path:
    predictions = predictions.reshape(truth.shape)
    horizon = truth.shape[1] > 1
    figure, axes = new_figure(
        1, 2 if horizon else 1, figsize=(9.5 if horizon else 4.8, 4), squeeze=False, layout="constrained"
    )
    axis = axes[0, 0]
    axis.scatter(truth.flatten(), predictions.flatten(), s=4, alpha=0.5, label="test targets")
    low, high = float(truth.min()), float(truth.max())
    axis.plot([low, high], [low, high], color="black", linewidth=0.8, label="prediction = truth")
    axis.set(xlabel=f"true target{unit}", ylabel=f"predicted target{unit}")
    axis.legend()
    if horizon:
        steps = range(1, truth.shape[1] + 1)
        for b in _spread(truth.shape[0], series).tolist():
            line = axes[0, 1].plot(steps, truth[b], linewidth=1.2)[0]
            axes[0, 1].plot(steps, predictions[b], linestyle="--", color=line.get_color())
        axes[0, 1].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0, 1].set(xlabel="forecast step", ylabel=f"target{unit}\n(solid: true, dashed: predicted)")
    return _save(figure, path, title)


def _spread(total: int, count: int) -> torch.Tensor:
    """Up to `count` indices in `[0, total)`, evenly spread, first and last included."""
    return torch.linspace(0, total - 1, min(count, total)).round().long().unique()


def new_figure(
    rows: int, columns: int, *, figsize: tuple[float, float], layout: str | None = None, **options: Any
) -> tuple[Figure, Any]:
    """A `Figure` of its own (no pyplot state, no global backend) and its `rows` x `columns` axes;
    `options` go to `Figure.subplots` (`squeeze`, `sharex`, `sharey`)."""
    figure = Figure(figsize=figsize, layout=layout)
    return figure, figure.subplots(rows, columns, **options)


def _save(figure: Figure, path: Path, title: str | None) -> Path:
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=120)
    return path
