"""One training run in a run folder: data, model, epochs, metrics, checkpoints, resume.

`fit(config, run_dir)` trains `config.model` on `config.dataset` with `config.missing` of the
observations dropped, and writes into `run_dir`:

- `config.json`: the resolved configuration;
- `metrics.csv` and `metrics.jsonl`: one row per epoch (`COLUMNS`: train and validation loss,
  accuracy for classification or MAE for regression, learning rate, seconds, function
  evaluations per sample, mean global gradient norm before clipping, and with `monitor_jacobian`
  the largest real Jacobian eigenvalue along the model's solves);
- `last.pt` (after every epoch) and `best.pt` (the best validation loss so far): atomic
  checkpoints (see `neuralct.train.checkpoint`);
- `result.json`: the test metrics of the best checkpoint when the run ends (and the parameter count);
- `learning_curves.png`, `vf_evals.png`, `predictions.png`: see `neuralct.train.plots`.

`fit(config, run_dir, resume=True)` continues a run from `last.pt` with the configuration saved in
the folder: a run killed at any point loses at most the epoch in progress and ends with the same
metrics as an uninterrupted one. With `patience`, training stops early after that many epochs
without a better validation loss; the test metrics are always those of the best checkpoint.
The validation split is a seeded 15% of the training split. Regression targets are standardised
with the training targets' statistics inside the model (`StandardizedTargets`), so losses and MAE
are in the dataset's units.

A minibatch whose forward solve fails or whose loss is not finite stops the run before the
optimizer takes a step with it; the error names the epoch, the minibatch and the solver's
per-sample statuses, and `last.pt` keeps the last completed epoch. With several `workers`
(`neuralct.train.distributed`), every process runs `fit` and rank 0 writes the folder.
"""

from __future__ import annotations

import csv
import functools
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
from ..models.base import AbstractContinuousModel, AbstractSequenceModel, SolveOptions
from .checkpoint import load_checkpoint, save_checkpoint
from .config import FitConfig, check_config_numerics
from .distributed import Workers, session
from .loop import EpochResult, TrainingFailed, evaluate, train_epoch
from .plots import plot_predictions, plot_run
from .progress import Progress
from .targets import StandardizedTargets

COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "train_mae",
    "val_loss",
    "val_accuracy",
    "val_mae",
    "lr",
    "seconds",
    "vf_evals",
    "grad_norm",
    "max_jacobian_real",
)


@dataclass(frozen=True)
class Splits:
    """The normalised train, validation and test batches of a run."""

    train: IrregularBatch
    val: IrregularBatch
    test: IrregularBatch

    def to(self, device: torch.device) -> Splits:
        """The three splits on `device`."""
        return Splits(self.train.to(device), self.val.to(device), self.test.to(device))


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
    per regression target (1 for targets `[B]`, H for a forecast horizon `[B, H]`), read as
    standardised targets (`StandardizedTargets`, with `data`'s target statistics)."""
    if data.targets is None:
        raise InvalidInputError(f"dataset {config.dataset!r} has no targets to train on")
    classification = data.targets.dtype == torch.long
    if classification:
        outputs = int(data.targets.max()) + 1
    else:
        outputs = 1 if data.targets.ndim == 1 else int(data.targets[0].numel())
    options = {"channels": data.channels, "hidden": config.hidden, "outputs": outputs, **config.model_options}
    model = registry.model(config.model, **options)
    return model if classification else StandardizedTargets(model, data.targets)


def fit(
    config: FitConfig | None,
    run_dir: Path | str,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    workers: Workers | None = None,
) -> dict:
    """Train (or resume) the run in `run_dir`; returns the test metrics of the best checkpoint.

    Args:
        config: the run's configuration (`None` with `resume=True`: the one saved in `run_dir`).
        run_dir: the run folder (created; must not hold another run unless resuming).
        resume: continue from `run_dir/last.pt`.
        progress: told of every minibatch and epoch (default: nothing is shown);
            `ProgressBar` draws them.
        workers: the training processes (default: this one alone; see
            `neuralct.train.distributed`). Every process calls `fit` with the same arguments;
            rank 0 writes the folder and reports progress.

    Raises:
        InvalidInputError: a bad configuration (before training), a folder that already holds
            a run when not resuming, or no run to resume.
        TrainingDiverged: a non-finite training loss; TrainingFailed: a forward solve failed.
            Both name the epoch and minibatch, and `last.pt` keeps the last completed epoch.
    """
    run_dir, workers = Path(run_dir), workers or Workers()
    progress = progress if progress is not None and workers.main else Progress()
    config = _agree(workers, lambda: _resolve_config(config, run_dir, resume))
    torch.manual_seed(config.seed)
    splits = load_splits(config).to(workers.device)
    model = build_model(config, splits.train).to(workers.device)
    options = config.solve_options()
    check_config_numerics(model, splits.train, config)
    if not resume and workers.main:
        _start_folder(config, run_dir)
    torch.manual_seed(config.seed + workers.rank)  # each process its own noise (noisy RNN, dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = make_schedule(config, optimizer)
    generator = torch.Generator().manual_seed(config.seed)  # the same shuffled order on every process
    state = dict(model=model, optimizer=optimizer, scheduler=schedule, generators=(generator,))
    train = functools.partial(
        train_epoch,
        model,
        splits.train,
        optimizer,
        batch_size=config.batch_size,
        generator=generator,
        options=options,
        clip_norm=config.clip_norm,
        workers=workers,
        on_batch=progress.batch,
    )
    start, best, best_epoch = 0, math.inf, 0
    if resume:
        checkpoint = load_checkpoint(run_dir / "last.pt", **state)
        start, best, best_epoch = checkpoint.epoch, checkpoint.extra["best_val_loss"], checkpoint.extra["best_epoch"]
        if workers.main:
            _truncate_metrics(run_dir, start)
        else:  # the checkpoint holds rank 0's random streams; the others draw their own noise again
            torch.manual_seed(config.seed + workers.rank + workers.world * start)
    for epoch in range(start + 1, config.epochs + 1):
        if config.patience is not None and epoch - 1 - best_epoch >= config.patience:
            break  # early stopping: no better validation loss for `patience` epochs
        progress.begin(epoch)
        train_result = _named_failure(train, epoch, run_dir, options)
        val = evaluate(model, splits.val, options=options, workers=workers)
        row = _row(epoch, train_result, val, optimizer.param_groups[0]["lr"])
        row["max_jacobian_real"] = _jacobian_monitor(model, splits.val, options) if config.monitor_jacobian else None
        _step(schedule, val.loss)
        if val.loss < best:
            best, best_epoch = val.loss, epoch
            if workers.main:
                save_checkpoint(
                    run_dir / "best.pt", model=model, optimizer=optimizer, epoch=epoch, extra={"val_loss": val.loss}
                )
        if workers.main:
            # The row goes first: a process killed between the two writes resumes from the previous
            # checkpoint, and the truncation on resume drops the row of the epoch it recomputes.
            _append_metrics(run_dir, row)
            extra = {"best_val_loss": best, "best_epoch": best_epoch}
            save_checkpoint(run_dir / "last.pt", **state, epoch=epoch, extra=extra)
        progress.epoch(row)
    return _finish(config, run_dir, model, splits.test, workers)


def _jacobian_monitor(model: AbstractSequenceModel, val: IrregularBatch, options: SolveOptions | None) -> float | None:
    """The largest real part of the Jacobian eigenvalues along the model's solves of up to 16
    validation series, or `None` for a model that is not one ODE over the series."""
    from ..stability.jacobian import model_jacobian_spectra  # the stability lab builds on training

    if not isinstance(model, AbstractContinuousModel):
        return None
    series = val.select(slice(0, min(16, val.batch_size)))
    try:
        return float(model_jacobian_spectra(model, series, options).spectral_abscissa().max())
    except InvalidInputError:  # a delay or noise term has no vector field to differentiate
        return None


def make_schedule(config: FitConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule `config.schedule`: `"cosine"` (to 0 over `epochs`),
    `"constant"`, or `"plateau"` (halved after 2 epochs without a better validation loss)."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _step(schedule: torch.optim.lr_scheduler.LRScheduler, val_loss: float) -> None:
    if isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
        schedule.step(val_loss)
    else:
        schedule.step()


def finished_run_config(run_dir: Path | str) -> FitConfig:
    """The configuration of the finished run in `run_dir` (one with `config.json` and `best.pt`).

    Raises:
        InvalidInputError: `run_dir` holds no trained run, naming the missing file.
    """
    run_dir = Path(run_dir)
    for name in ("config.json", "best.pt"):
        if not (run_dir / name).is_file():
            raise InvalidInputError(f"no trained run in {run_dir}: it has no {name}")
    return FitConfig.from_file(run_dir / "config.json")


def _named_failure(
    train: Callable[[], EpochResult], epoch: int, run_dir: Path, options: SolveOptions | None
) -> EpochResult:
    """`train()` (one epoch), with a failed step re-raised naming the epoch, the numerics and the
    checkpoint that is kept."""
    try:
        return train()
    except TrainingFailed as error:
        kept = f"{run_dir / 'last.pt'} keeps epoch {epoch - 1}" if epoch > 1 else "no epoch was completed"
        hint = "lower `lr`, set `clip_norm`, loosen rtol/atol, raise `max_steps` or change the solver"
        numerics = "the model's own numerics" if options is None else options.describe()
        raise type(error)(f"epoch {epoch}, {error}\n(numerics: {numerics}); {kept} ({hint})") from error


def _agree(workers: Workers, action: Callable[[], FitConfig]) -> FitConfig:
    """`action()` run by rank 0 alone, its result (or its error) shared with every process."""
    if workers.world == 1:
        return action()
    outcome: tuple[str, object] | None = None
    if workers.main:
        try:
            outcome = ("done", action())
        except NeuralCTError as error:
            outcome = ("error", error)
    kind, value = workers.from_main(outcome)
    if kind == "error":
        raise value
    return value


def evaluate_run(run_dir: Path | str, **changes: object) -> dict:
    """Re-score the best checkpoint of a finished run on its test split, optionally under other
    numerics or another missing rate (`changes` are `FitConfig` fields, e.g. `solver="rk4"`,
    `controller="constant"`, `step=0.05`, `missing=0.5`): "what if I swap the solver at
    inference?". Returns the test metrics; nothing in the folder changes.

    Raises:
        InvalidInputError: no finished run in `run_dir`, or a bad change (with the valid choices).
    """
    run_dir = Path(run_dir)
    config = finished_run_config(run_dir).replace(**changes)
    with session(config.device) as workers:
        splits = load_splits(config).to(workers.device)
        model = build_model(config, splits.train).to(workers.device)
        load_checkpoint(run_dir / "best.pt", model=model, restore_rng=False)
        check_config_numerics(model, splits.test, config)
        return _test_metrics(model, splits.test, config, workers)


def _resolve_config(config: FitConfig | None, run_dir: Path, resume: bool) -> FitConfig:
    """The run's config: the one saved in `run_dir` when resuming, else `config` for a folder
    that holds no run yet (nothing is written)."""
    saved = run_dir / "config.json"
    if resume:
        if not (run_dir / "last.pt").exists():
            raise InvalidInputError(f"nothing to resume in {run_dir}: no last.pt (start the run without --resume)")
        return FitConfig.from_file(saved)
    if config is None:
        raise InvalidInputError("`config` is needed to start a run")
    if saved.exists():
        raise InvalidInputError(f"{run_dir} already holds a run; resume it or choose another folder")
    return config


def _start_folder(config: FitConfig, run_dir: Path) -> None:
    """Create `run_dir` with the resolved `config.json` (once the numerics passed their dry run)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config.as_dict(), indent=1) + "\n")


def _row(epoch: int, train: EpochResult, val: EpochResult, lr: float) -> dict:
    values = (epoch, train.loss, train.accuracy, train.mae, val.loss, val.accuracy, val.mae, lr)
    return dict(zip(COLUMNS, (*values, train.seconds, train.vf_evals, train.grad_norm)))


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


def _finish(
    config: FitConfig, run_dir: Path, model: AbstractSequenceModel, test: IrregularBatch, workers: Workers
) -> dict:
    workers.gather(None)  # every process waits for rank 0's last best.pt
    load_checkpoint(run_dir / "best.pt", model=model, restore_rng=False)
    metrics = _test_metrics(model, test, config, workers)
    if workers.main:
        (run_dir / "result.json").write_text(json.dumps(metrics, indent=1) + "\n")
        plot_run(run_dir)
        plot_predictions(model, test, run_dir / "predictions.png", config.solve_options())
    return metrics


def _test_metrics(model: AbstractSequenceModel, test: IrregularBatch, config: FitConfig, workers: Workers) -> dict:
    """Test loss, accuracy (`None` for regression), MAE (`None` for classification),
    evaluations per sample and parameter count."""
    result = evaluate(model, test, options=config.solve_options(), workers=workers)
    parameters = sum(p.numel() for p in model.parameters())
    return {
        "test_loss": result.loss,
        "test_accuracy": result.accuracy,
        "test_mae": result.mae,
        "test_vf_evals": result.vf_evals,
        "parameters": parameters,
    }
