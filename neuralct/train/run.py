"""One training run in a run folder: data, model, epochs, metrics, checkpoints, resume.

`fit(config, run_dir)` trains `config.model` on `config.dataset` with `config.missing` of the
observations dropped, and writes into `run_dir`:

- `config.json`: the resolved configuration;
- `metrics.csv` and `metrics.jsonl`: one row per epoch (train loss and accuracy, validation loss
  and accuracy, learning rate, seconds, function evaluations per sample);
- `last.pt` (after every epoch) and `best.pt` (the best validation loss so far): atomic
  checkpoints (see `neuralct.train.checkpoint`);
- `result.json`: the test metrics of the best checkpoint when the run ends (and the parameter count);
- `learning_curves.png`, `vf_evals.png`: see `neuralct.train.plots`.

`fit(config, run_dir, resume=True)` continues a run from `last.pt` with the configuration saved in
the folder: a run killed at any point loses at most the epoch in progress and ends with the same
metrics as an uninterrupted one. With `patience`, training stops early after that many epochs
without a better validation loss; the test metrics are always those of the best checkpoint.
The validation split is a seeded 15% of the training split.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import registry
from ..data.datasets import load
from ..data.series import IrregularBatch
from ..data.transforms import Normalize
from ..errors import InvalidInputError, NeuralCTError
from ..models.base import AbstractSequenceModel
from .checkpoint import load_checkpoint, save_checkpoint
from .config import FitConfig, check_numerics
from .loop import EpochResult, evaluate, train_epoch
from .plots import plot_run

COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds", "vf_evals")


class TrainingDiverged(NeuralCTError, RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class Splits:
    """The normalised train, validation and test batches of a run."""

    train: IrregularBatch
    val: IrregularBatch
    test: IrregularBatch


def load_splits(config: FitConfig) -> Splits:
    """Train (85%), validation (15%, seeded) and test splits, normalised on the training part."""
    full = load(config.dataset, "train", missing_rate=config.missing, seed=config.seed, **config.dataset_options)
    test = load(config.dataset, "test", missing_rate=config.missing, seed=config.seed, **config.dataset_options)
    order = torch.randperm(full.batch_size, generator=torch.Generator().manual_seed(config.seed))
    cut = max(1, round(0.15 * full.batch_size))
    train, val = full.select(order[cut:]), full.select(order[:cut])
    normalize = Normalize.fit(train)
    return Splits(normalize(train), normalize(val), normalize(test))


def build_model(config: FitConfig, data: IrregularBatch) -> AbstractSequenceModel:
    """The configured model for `data`'s channels and targets: one logit per class, or one output
    per regression target (1 for targets `[B]`, H for a forecast horizon `[B, H]`)."""
    if data.targets is None:
        raise InvalidInputError(f"dataset {config.dataset!r} has no targets to train on")
    if data.targets.dtype == torch.long:
        outputs = int(data.targets.max()) + 1  # classes
    else:
        outputs = 1 if data.targets.ndim == 1 else int(data.targets[0].numel())  # regression targets
    options = {"channels": data.channels, "hidden": config.hidden, "outputs": outputs, **config.model_options}
    return registry.model(config.model, **options)


def fit(
    config: FitConfig | None, run_dir: Path | str, *, resume: bool = False, report: Callable[[dict], None] = print
) -> dict:
    """Train (or resume) the run in `run_dir`; returns the test metrics of the best checkpoint.

    Args:
        config: the run's configuration (`None` with `resume=True`: the one saved in `run_dir`).
        run_dir: the run folder (created; must not hold another run unless resuming).
        resume: continue from `run_dir/last.pt`.
        report: called with each epoch's metrics row (default: printed).

    Raises:
        InvalidInputError: a bad configuration (before training), a folder that already holds
            a run when not resuming, or no run to resume.
        TrainingDiverged: a non-finite training loss (the last good checkpoint is kept).
    """
    run_dir = Path(run_dir)
    config = _prepare_folder(config, run_dir, resume)
    torch.manual_seed(config.seed)
    splits = load_splits(config)
    model = build_model(config, splits.train)
    options = config.solve_options()
    check_numerics(model, splits.train, options)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    generator = torch.Generator().manual_seed(config.seed)
    state = dict(model=model, optimizer=optimizer, scheduler=schedule, generators=(generator,))
    start, best, best_epoch = 0, math.inf, 0
    if resume:
        checkpoint = load_checkpoint(run_dir / "last.pt", **state)
        start, best, best_epoch = checkpoint.epoch, checkpoint.extra["best_val_loss"], checkpoint.extra["best_epoch"]
        _truncate_metrics(run_dir, start)
    for epoch in range(start + 1, config.epochs + 1):
        if config.patience is not None and epoch - 1 - best_epoch >= config.patience:
            break  # early stopping: no better validation loss for `patience` epochs
        train = train_epoch(
            model,
            splits.train,
            optimizer,
            batch_size=config.batch_size,
            generator=generator,
            options=options,
            clip_norm=config.clip_norm,
        )
        _check_finite(train.loss, epoch, run_dir)
        val = evaluate(model, splits.val, options=options)
        row = _row(epoch, train, val, schedule.get_last_lr()[0])
        schedule.step()
        if val.loss < best:
            best, best_epoch = val.loss, epoch
            save_checkpoint(
                run_dir / "best.pt", model=model, optimizer=optimizer, epoch=epoch, extra={"val_loss": val.loss}
            )
        # The row goes first: a process killed between the two writes resumes from the previous
        # checkpoint, and the truncation on resume drops the row of the epoch it recomputes.
        _append_metrics(run_dir, row)
        save_checkpoint(
            run_dir / "last.pt", **state, epoch=epoch, extra={"best_val_loss": best, "best_epoch": best_epoch}
        )
        report(row)
    return _finish(config, run_dir, model, splits.test)


def evaluate_run(run_dir: Path | str, **changes: object) -> dict:
    """Re-score the best checkpoint of a finished run on its test split, optionally under other
    numerics or another missing rate (`changes` are `FitConfig` fields, e.g. `solver="rk4"`,
    `controller="constant"`, `step=0.05`, `missing=0.5`): "what if I swap the solver at
    inference?". Returns the test metrics; nothing in the folder changes.

    Raises:
        InvalidInputError: no finished run in `run_dir`, or a bad change (with the valid choices).
    """
    run_dir = Path(run_dir)
    if not (run_dir / "best.pt").exists():
        raise InvalidInputError(f"no trained run to evaluate in {run_dir}: no best.pt")
    config = FitConfig.from_mapping(json.loads((run_dir / "config.json").read_text())).replace(**changes)
    splits = load_splits(config)
    model = build_model(config, splits.train)
    load_checkpoint(run_dir / "best.pt", model=model, restore_rng=False)
    check_numerics(model, splits.test, config.solve_options())
    return _test_metrics(model, splits.test, config)


def _check_finite(loss: float, epoch: int, run_dir: Path) -> None:
    if not math.isfinite(loss):
        hint = "lower `lr`, set `clip_norm`, or change the solver"
        kept = run_dir / "last.pt"
        raise TrainingDiverged(f"epoch {epoch}: the training loss is {loss}; {kept} keeps epoch {epoch - 1} ({hint})")


def _prepare_folder(config: FitConfig | None, run_dir: Path, resume: bool) -> FitConfig:
    saved = run_dir / "config.json"
    if resume:
        if not (run_dir / "last.pt").exists():
            raise InvalidInputError(f"nothing to resume in {run_dir}: no last.pt (start the run without --resume)")
        return FitConfig.from_mapping(json.loads(saved.read_text()))
    if config is None:
        raise InvalidInputError("`config` is needed to start a run")
    if saved.exists():
        raise InvalidInputError(f"{run_dir} already holds a run; resume it or choose another folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(config.as_dict(), indent=1) + "\n")
    return config


def _row(epoch: int, train: EpochResult, val: EpochResult, lr: float) -> dict:
    values = (epoch, train.loss, train.accuracy, val.loss, val.accuracy, lr, train.seconds, train.vf_evals)
    return dict(zip(COLUMNS, values))


def _append_metrics(run_dir: Path, row: dict) -> None:
    path = run_dir / "metrics.csv"
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
    with (run_dir / "metrics.jsonl").open("a") as handle:
        handle.write(json.dumps(row) + "\n")


def _truncate_metrics(run_dir: Path, epochs: int) -> None:
    """Drop metric rows of epochs after the checkpoint (written before a crash, not saved in it)."""
    jsonl = run_dir / "metrics.jsonl"
    rows = [_parse(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    kept = [row for row in rows if row is not None and row["epoch"] <= epochs]
    for path in (jsonl, run_dir / "metrics.csv"):
        path.unlink(missing_ok=True)
    for row in kept:
        _append_metrics(run_dir, row)


def _parse(line: str) -> dict | None:
    """A metrics row, or `None` for a line torn by a killed process."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def _finish(config: FitConfig, run_dir: Path, model: AbstractSequenceModel, test: IrregularBatch) -> dict:
    load_checkpoint(run_dir / "best.pt", model=model, restore_rng=False)
    metrics = _test_metrics(model, test, config)
    (run_dir / "result.json").write_text(json.dumps(metrics, indent=1) + "\n")
    plot_run(run_dir)
    return metrics


def _test_metrics(model: AbstractSequenceModel, test: IrregularBatch, config: FitConfig) -> dict:
    """Test loss, accuracy (`None` for regression), evaluations per sample and parameter count."""
    result = evaluate(model, test, options=config.solve_options())
    parameters = sum(p.numel() for p in model.parameters())
    return {
        "test_loss": result.loss,
        "test_accuracy": result.accuracy,
        "test_vf_evals": result.vf_evals,
        "parameters": parameters,
    }
