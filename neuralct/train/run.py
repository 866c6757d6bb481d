"""One training run in a run folder: data, model, epochs, metrics, checkpoints, resume.

`fit(config, run_dir)` trains `config.model` on `config.dataset` with `config.missing` of the
observations dropped, and writes into `run_dir`:

- `config.json`: the resolved configuration;
- `metrics.csv` and `metrics.jsonl`: one row per epoch (`COLUMNS`: train and validation loss,
  accuracy for classification or MAE for regression, learning rate, seconds, function
  evaluations per sample, mean global gradient norm before clipping, with `monitor_jacobian`
  the largest real Jacobian eigenvalue along the model's solves, and the samples whose solves
  failed);
- `last.pt` (after every epoch), `prev.pt` (the one before) and `best.pt` (the best validation
  loss so far): atomic, checksummed checkpoints (see `neuralct.train.checkpoint`);
- `result.json`: the test metrics of the best checkpoint when the run ends (and the parameter count);
- `learning_curves.png`, `vf_evals.png`, `predictions.png`: see `neuralct.train.plots`.

`fit(config, run_dir, resume=True)` continues a run from `last.pt` with the configuration saved in
the folder: a run killed at any point loses at most the epoch in progress and ends with the same
metrics as an uninterrupted one. With `patience`, training stops early after that many epochs
without a better validation loss; the test metrics are always those of the best checkpoint.
The validation split is a seeded 15% of the training split. Regression targets are standardised
with the training targets' statistics inside the model (`StandardizedTargets`), so losses and MAE
are in the dataset's units.

The folder never loses its history (see `neuralct.train.folder` and `neuralct.train.resume`): one
process writes it at a time (`run.lock`); `last.pt` is checksummed and the checkpoint it replaced
is kept as `prev.pt`, which a resume falls back on when `last.pt` is damaged; metric rows are
appended and flushed before the epoch's checkpoint, and recovered from both files on resume; a
folder killed before its first epoch ended starts afresh (or from epoch 0 with `resume=True`); a
resumed run can extend its `epochs`.

A sample whose forward solve fails is left out of its minibatch's loss and step (or of its split's
scores) and counted: `train_failed`, `val_failed` and `test_failed`. With `strict`, a failed solve
stops the run before the optimizer takes a step with it; so does a non-finite loss, in every mode.
The error names the epoch, the minibatch and the solver's per-sample statuses, and `last.pt` keeps
the last completed epoch. With several `workers` (`neuralct.train.distributed`), every process
runs `fit` and rank 0 writes the folder.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from .._checks import describe
from ..data.files import write_series_file
from ..data.series import IrregularBatch
from ..errors import InvalidInputError, NeuralCTError
from ..models.base import AbstractSequenceModel, SolveOptions
from .build import build_model, score_test_split
from .checkpoint import load_checkpoint, save_checkpoint
from .config import FitConfig
from .distributed import Workers
from .folder import COLUMNS, RunLock, append_metrics, recover_metrics, write_atomically
from .loop import EpochResult, TrainingFailed, evaluate, train_epoch
from .numerics import check_config_numerics
from .plots import plot_predictions, plot_run, run_title
from .progress import Progress
from .resume import Start, plan_start, restore
from .splits import DataRecord, Splits, load_splits, run_splits

_T = TypeVar("_T")
# A number recorded after each epoch from the model, the validation split and the numerics.
Monitor = Callable[[AbstractSequenceModel, IrregularBatch, SolveOptions | None], float | None]
__all__ = ["Monitor", "fit", "make_schedule"]


def fit(
    config: FitConfig | None,
    run_dir: Path | str,
    *,
    resume: bool = False,
    changes: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    workers: Workers | None = None,
    data: tuple[IrregularBatch, IrregularBatch] | None = None,
    monitor: Monitor | None = None,
) -> dict:
    """Train (or resume) the run in `run_dir`; returns the test metrics of the best checkpoint.

    Args:
        config: the run's configuration (`None` with `resume=True`: the one saved in `run_dir`).
        data: your own `(train, test)` batches instead of `config`'s dataset or files: they are
            written into the run folder (`data/train.npz`, `data/test.npz`, see
            `neuralct.data.save_npz`) and the run reads them from there like any data file,
            so it can be resumed and evaluated later. Validation is drawn from `train`.
        run_dir: the run folder (created; must not hold another run unless resuming).
        resume: continue from `run_dir/last.pt` (see `neuralct.train.resume`).
        changes: with `resume`, config keys to change: `epochs` (to extend the run, or end it
            sooner, not below the completed epochs), `patience`, `strict`.
        progress: told of every minibatch, epoch and note (default: nothing shown; `ProgressBar` draws).
        workers: the training processes (default: this one alone; see
            `neuralct.train.distributed`). Every process calls `fit` with the same arguments;
            rank 0 locks and writes the folder and reports progress.
        monitor: with `monitor_jacobian`, the number recorded after each epoch as
            `max_jacobian_real`, from the model, the validation split and the numerics
            (`neuralct fit --monitor-jacobian` passes `neuralct.stability.jacobian_monitor`).

    Raises:
        InvalidInputError: a bad configuration (before training), a folder that already holds
            a run when not resuming, nothing to resume, a change that `resume` refuses, or
            `monitor_jacobian` without a `monitor`.
        RunFolderLocked: another process writes `run_dir`.
        CheckpointError: the checkpoints to resume from are damaged.
        TrainingDiverged: a non-finite training loss; TrainingFailed: a forward solve failed
            (with `strict`), or every sample of a split did. Both name the epoch and minibatch,
            and `last.pt` keeps the last completed epoch.
        OSError: the folder cannot be written (read-only, full disk), naming the file.
    """
    run_dir, workers = Path(run_dir), workers or Workers()
    progress = progress if progress is not None and workers.main else Progress()
    if data is not None:
        config = _with_own_batches(config, run_dir, data, resume)
    # A new run reads its data before its folder exists: a file that cannot be read leaves nothing behind.
    splits = load_splits(config) if config is not None and not resume and data is None else None
    lock = RunLock(run_dir)
    _agree(workers, lock.acquire)  # rank 0 holds the folder; its refusal reaches every process
    try:
        workers.check_shared(lock.path)  # on several machines, every one must see the folder
        if data is not None:
            _agree(workers, lambda: _save_batches(config, data))  # rank 0 writes; the others wait for it
        start = _agree(workers, lambda: plan_start(config, run_dir, resume, dict(changes or {})))
        _check_monitor(start.config, monitor)
        return _train(start, run_dir, progress, workers, splits if not start.resume else None, monitor)
    finally:
        if workers.main:
            lock.release()


def _check_monitor(config: FitConfig, monitor: Monitor | None) -> None:
    """Refuse `config.monitor_jacobian` without a `monitor` to record."""
    if config.monitor_jacobian and monitor is None:
        raise InvalidInputError(
            "`monitor_jacobian` records what a `monitor` returns: pass "
            "fit(..., monitor=neuralct.stability.jacobian_monitor), as `neuralct fit --monitor-jacobian` does"
        )


def _with_own_batches(
    config: FitConfig | None, run_dir: Path, data: tuple[IrregularBatch, IrregularBatch], resume: bool
) -> FitConfig:
    """`config` reading the `(train, test)` batches from the run folder (where `_save_batches` puts them)."""
    if resume or config is None:
        raise InvalidInputError("`data` starts a new run with a `config`; a resumed run reads the batches it saved")
    if len(data) != 2 or not all(isinstance(batch, IrregularBatch) for batch in data):
        raise InvalidInputError(f"`data` must be a (train, test) pair of IrregularBatch; got {describe(data)}")
    if config.data is not None:
        raise InvalidInputError("give `data` batches or a `config.data` file, not both")
    folder = (run_dir / "data").resolve()
    own = {
        "dataset": None,
        "dataset_options": {},
        "data": str(folder / "train.npz"),
        "test_data": str(folder / "test.npz"),
    }
    return FitConfig.from_mapping({**config.as_dict(), **own})


def _save_batches(config: FitConfig, data: tuple[IrregularBatch, IrregularBatch]) -> None:
    """Write the `(train, test)` batches where `config` reads them (one class list for both)."""
    train, test = data
    classes = None
    if train.targets is not None and train.targets.dtype == torch.long:
        count = int(max(train.targets.max(), test.targets.max())) + 1
        classes = tuple(str(k) for k in range(count))
    Path(config.data).parent.mkdir(exist_ok=True)
    for batch, path in ((train, config.data), (test, config.test_data)):
        write_series_file(batch, path, classes=classes)


def _train(
    start: Start, run_dir: Path, progress: Progress, workers: Workers, splits: Splits | None, monitor: Monitor | None
) -> dict:
    """The epochs of `fit` in the locked folder, then the test metrics of the best checkpoint."""
    config = start.config
    for note in start.notes:
        progress.note(note)
    torch.manual_seed(config.seed)
    if splits is None:  # a resumed run: its own test series and statistics
        splits = run_splits(config, run_dir if start.resume else None)
    splits = splits.to(workers.device, config.torch_dtype)
    model = build_model(config, splits.train, splits.class_count).to(workers.device)
    options = config.solve_options(model)
    check_config_numerics(model, splits.train, config)
    torch.manual_seed(config.seed + workers.rank)  # each process its own noise (noisy RNN, dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = make_schedule(config, optimizer)
    generator = torch.Generator().manual_seed(config.seed)  # the same shuffled order on every process
    state = dict(model=model, optimizer=optimizer, scheduler=schedule, generators=(generator,))
    done, best, best_epoch = _begin(start, run_dir, state, progress, workers, splits.record)
    train = functools.partial(
        train_epoch,
        model,
        splits.train.to("cpu") if config.workers else splits.train,  # the background processes read it there
        optimizer,
        batch_size=config.batch_size,
        generator=generator,
        options=options,
        clip_norm=config.clip_norm,
        workers=workers,
        on_batch=progress.batch,
        strict=config.strict,
        by_length=config.bucket,
        prefetch=config.workers,
    )
    validate = functools.partial(evaluate, model, splits.val, options=options, workers=workers, strict=config.strict)
    for epoch in range(done + 1, config.epochs + 1):
        if config.patience is not None and epoch - 1 - best_epoch >= config.patience:
            break  # early stopping: no better validation loss for `patience` epochs
        progress.begin(epoch)
        train_result = _named_failure(train, epoch, run_dir, options)
        val = _named_failure(lambda: _scored_some(validate(), "validation"), epoch, run_dir, options)
        jacobian = monitor(model, splits.val, options) if monitor is not None and config.monitor_jacobian else None
        row = _row(epoch, train_result, val, optimizer.param_groups[0]["lr"], jacobian)
        _step(schedule, val.loss)
        if val.loss < best:
            best, best_epoch = val.loss, epoch
            if workers.main:
                save_checkpoint(
                    run_dir / "best.pt", model=model, optimizer=optimizer, epoch=epoch, extra={"val_loss": val.loss}
                )
        if workers.main:
            # The row goes first: a process killed between the two writes resumes from the previous
            # checkpoint, and the recovery on resume drops the row of the epoch it recomputes.
            append_metrics(run_dir, row)
            extra = {"best_val_loss": best, "best_epoch": best_epoch}
            save_checkpoint(run_dir / "last.pt", **state, epoch=epoch, extra=extra, previous=run_dir / "prev.pt")
        progress.epoch(row)
    return _finish(config, run_dir, model, splits, workers)


def _begin(
    start: Start, run_dir: Path, state: dict[str, Any], progress: Progress, workers: Workers, record: DataRecord
) -> tuple[int, float, int]:
    """Restore a resumed run's training state (every process) and write the folder's start (rank
    0: the config, the metric rows kept); returns the completed epochs, the best validation loss
    and its epoch."""
    config, done, best, best_epoch = start.config, 0, math.inf, 0
    if start.resume:
        checkpoint, note = restore(run_dir, state)
        if note is not None:
            progress.note(note)
        if config.epochs < checkpoint.epoch:
            raise InvalidInputError(
                f"`epochs` must be at least the {checkpoint.epoch} epochs the run completed; got {config.epochs}"
            )
        _stretch_schedule(state["scheduler"], config.epochs)
        done, best, best_epoch = checkpoint.epoch, checkpoint.extra["best_val_loss"], checkpoint.extra["best_epoch"]
        if not workers.main:  # the checkpoint holds rank 0's random streams; the others draw their own again
            torch.manual_seed(config.seed + workers.rank + workers.world * done)
    if workers.main:
        write_atomically(run_dir / "config.json", (json.dumps(config.as_dict(), indent=1) + "\n").encode())
        write_atomically(run_dir / "data.json", record.to_json())
        if not start.resume:
            (run_dir / "best.pt").unlink(missing_ok=True)  # of an attempt that completed no epoch
        recover_metrics(run_dir, done)
    return done, best, best_epoch


def make_schedule(config: FitConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule `config.schedule`: `"cosine"` (to 0 over `epochs`),
    `"constant"`, or `"plateau"` (halved after 2 epochs without a better validation loss)."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _stretch_schedule(schedule: torch.optim.lr_scheduler.LRScheduler, epochs: int) -> None:
    """Re-stretch a resumed cosine schedule over another number of `epochs`: from the epoch reached
    on, the learning rate is the cosine over the new total (annealed to 0 at its end), where the
    saved schedule would have ended at 0 and then risen again. Other schedules do not depend on it."""
    if isinstance(schedule, torch.optim.lr_scheduler.CosineAnnealingLR) and schedule.T_max != epochs:
        schedule.T_max = epochs
        fraction = (1 + math.cos(math.pi * schedule.last_epoch / epochs)) / 2
        for group, base in zip(schedule.optimizer.param_groups, schedule.base_lrs):
            group["lr"] = schedule.eta_min + (base - schedule.eta_min) * fraction  # the closed form it steps on from


def _step(schedule: torch.optim.lr_scheduler.LRScheduler, val_loss: float) -> None:
    if isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
        schedule.step(val_loss)
    else:
        schedule.step()


def _named_failure(action: Callable[[], _T], epoch: int, run_dir: Path, options: SolveOptions | None) -> _T:
    """`action()` (an epoch's training or validation), with a failure re-raised naming the epoch,
    the numerics and the checkpoint that is kept."""
    try:
        return action()
    except TrainingFailed as error:
        kept = f"{run_dir / 'last.pt'} keeps epoch {epoch - 1}" if epoch > 1 else "no epoch was completed"
        hint = "lower `lr`, set `clip_norm`, loosen rtol/atol, raise `max_steps` or change the solver"
        numerics = "the model's own numerics" if options is None else options.describe()
        raise type(error)(f"epoch {epoch}, {error}\n(numerics: {numerics}); {kept} ({hint})") from error


def _scored_some(result: EpochResult, split: str) -> EpochResult:
    """`result`, unless no sample of the `split` was scored (every solve failed)."""
    if result.samples == 0:
        raise TrainingFailed(f"the solves of all {result.failed} {split} samples failed")
    return result


def _agree(workers: Workers, action: Callable[[], _T]) -> _T:
    """`action()` run by rank 0 alone, its result (or its error) shared with every process."""
    if workers.world == 1:
        return action()
    outcome: tuple[str, object] | None = None
    if workers.main:
        try:
            outcome = ("done", action())
        except (NeuralCTError, OSError) as error:
            outcome = ("error", error)
    kind, value = workers.from_main(outcome)
    if kind == "error":
        raise value
    return value


def _row(epoch: int, train: EpochResult, val: EpochResult, lr: float, jacobian: float | None) -> dict:
    values = (epoch, train.loss, train.accuracy, train.mae, val.loss, val.accuracy, val.mae, lr, train.seconds)
    return dict(zip(COLUMNS, (*values, train.vf_evals, train.grad_norm, jacobian, train.failed, val.failed)))


def _finish(config: FitConfig, run_dir: Path, model: AbstractSequenceModel, splits: Splits, workers: Workers) -> dict:
    workers.gather(None)  # every process waits for rank 0's last best.pt
    load_checkpoint(run_dir / "best.pt", model=model, restore_rng=False)
    metrics = score_test_split(model, splits.test, config, workers)
    if workers.main:
        write_atomically(run_dir / "result.json", (json.dumps(metrics, indent=1) + "\n").encode())
        plot_run(run_dir)
        record = splits.record
        plot_predictions(
            model,
            splits.test,
            run_dir / "predictions.png",
            config.solve_options(model),
            classes=record.classes,
            channels=record.channels,
            title=run_title(config.as_dict()),
        )
    return metrics
