"""The model of a run, from its configuration, and the re-scoring of a finished run.

`build_model` makes the configured model for the run's data (`neuralct.train.splits`);
`load_run` gives a run folder's configuration, splits and best checkpoint (the one way the
stability lab and `evaluate_run` open a run); `evaluate_run` re-scores a finished run's best
checkpoint under other numerics or another missing rate, on the run's own test series and
normalisation (its `data.json`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import registry
from ..data.series import IrregularBatch
from ..errors import InvalidInputError
from ..models.base import AbstractSequenceModel
from .checkpoint import load_checkpoint
from .config import FitConfig, naming_options
from .distributed import Workers, session
from .loop import BatchReport, evaluate
from .numerics import check_config_numerics
from .splits import Splits, run_splits
from .targets import StandardizedTargets


def build_model(config: FitConfig, data: IrregularBatch, classes: int | None = None) -> AbstractSequenceModel:
    """The configured model for `data`'s channels and targets, in `config.dtype`: one logit per
    class (`classes` of them, default the largest class index + 1), or one output per regression
    target (1 for targets `[B]`, H for a forecast horizon `[B, H]`), read as standardised targets
    (`StandardizedTargets`, with `data`'s target statistics).

    Raises:
        InvalidInputError: data without targets, a bad `model_options` key, or an
            `interpolation` for a model without a control path.
    """
    if data.targets is None:
        raise InvalidInputError(f"dataset {config.dataset or config.data!r} has no targets to train on")
    classification = data.targets.dtype == torch.long
    if classification:
        outputs = classes or int(data.targets.max()) + 1
    else:
        outputs = 1 if data.targets.ndim == 1 else int(data.targets[0].numel())
    options = {"channels": data.channels, "hidden": config.hidden, "outputs": outputs, **config.model_options}
    if config.interpolation is not None:
        if "interpolation" not in inspect.signature(registry.entry("model", config.model).load()).parameters:
            raise InvalidInputError(
                f"`interpolation` sets the control path of a CDE model (ncde, ancde); model {config.model!r} has none"
            )
        options["interpolation"] = config.interpolation
    with naming_options("model_options"):
        model = registry.model(config.model, **options)
    model = model if classification else StandardizedTargets(model, data.targets)
    return model.to(config.torch_dtype)


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


@dataclass(frozen=True)
class LoadedRun:
    """A run's configuration, its normalised splits and its model.

    Attributes:
        config: the run's configuration.
        splits: its train, validation and test batches, on the device asked for, in `config.dtype`.
        model: the configured model on that device, with the run's best checkpoint when it has one.
    """

    config: FitConfig
    splits: Splits
    model: AbstractSequenceModel


def load_run(
    run_dir: Path | str | None, config: FitConfig | None = None, *, device: torch.device | str = "cpu"
) -> LoadedRun:
    """The finished run in `run_dir` with its best checkpoint, on its own test series and
    normalisation (its `data.json`); or, with `run_dir=None`, the untrained model of `config`
    on the splits a new run would load (seed the draw of its parameters first).

    Args:
        run_dir: a folder written by `fit` (with `config.json` and `best.pt`), or `None`.
        config: the configuration to build the model by (default: the run's own), e.g. the
            run's with other numerics.
        device: where the splits and the model go.

    Raises:
        InvalidInputError: no finished run in `run_dir`, or neither `run_dir` nor `config`.
    """
    if config is None:
        if run_dir is None:
            raise InvalidInputError("load_run needs a `run_dir` or a `config`; got neither")
        config = finished_run_config(run_dir)
    folder = None if run_dir is None else Path(run_dir)
    splits = run_splits(config, folder).to(device, config.torch_dtype)
    model = build_model(config, splits.train, splits.class_count).to(device)
    if folder is not None:
        load_checkpoint(folder / "best.pt", model=model, restore_rng=False)
    return LoadedRun(config, splits, model)


def evaluate_run(
    run_dir: Path | str, *, on_batch: Callable[[BatchReport], None] | None = None, **changes: object
) -> dict:
    """Re-score the best checkpoint of a finished run on its test split, optionally under other
    numerics or another missing rate (`changes` are `FitConfig` fields, e.g. `solver="rk4"`,
    `controller="constant"`, `step=0.05`, `missing=0.5`): "what if I swap the solver at
    inference?". Returns the test metrics; nothing in the folder changes. `on_batch` is told
    of every test minibatch scored (`neuralct.train.loop.evaluate`; a `PassBar` draws it).

    Raises:
        InvalidInputError: no finished run in `run_dir`, or a bad change (with the valid choices).
    """
    run_dir = Path(run_dir)
    config = finished_run_config(run_dir).replace(**changes)
    with session(config.device) as workers:
        run = load_run(run_dir, config, device=workers.device)
        check_config_numerics(run.model, run.splits.test, config)
        return score_test_split(run.model, run.splits.test, config, workers, on_batch=on_batch)


def score_test_split(
    model: AbstractSequenceModel,
    test: IrregularBatch,
    config: FitConfig,
    workers: Workers,
    *,
    on_batch: Callable[[BatchReport], None] | None = None,
) -> dict:
    """Test loss, accuracy (`None` for regression), MAE (`None` for classification),
    evaluations per sample, samples whose solves failed (left out of the others) and parameter
    count; `on_batch` is told of every minibatch scored."""
    options = config.solve_options(model)
    result = evaluate(model, test, options=options, workers=workers, strict=config.strict, on_batch=on_batch)
    parameters = sum(p.numel() for p in model.parameters())
    return {
        "test_loss": result.loss,
        "test_accuracy": result.accuracy,
        "test_mae": result.mae,
        "test_vf_evals": result.vf_evals,
        "test_failed": result.failed,
        "parameters": parameters,
    }
