"""The data and the model of a run, from its configuration, and the re-scoring of a finished run.

`load_splits` gives the normalised train, validation (a seeded 15% of the training split) and test
batches; `build_model` the configured model for them; `evaluate_run` re-scores a finished run's
best checkpoint under other numerics or another missing rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .. import registry
from ..data.datasets import load
from ..data.series import IrregularBatch
from ..data.transforms import Normalize
from ..errors import InvalidInputError
from ..models.base import AbstractSequenceModel
from .checkpoint import load_checkpoint
from .config import FitConfig, check_config_numerics, naming_options
from .distributed import Workers, session
from .loop import evaluate
from .targets import StandardizedTargets


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
    with naming_options("dataset_options"):
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
    with naming_options("model_options"):
        model = registry.model(config.model, **options)
    return model if classification else StandardizedTargets(model, data.targets)


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
        return score_test_split(model, splits.test, config, workers)


def score_test_split(model: AbstractSequenceModel, test: IrregularBatch, config: FitConfig, workers: Workers) -> dict:
    """Test loss, accuracy (`None` for regression), MAE (`None` for classification),
    evaluations per sample, samples whose solves failed (left out of the others) and parameter
    count."""
    result = evaluate(model, test, options=config.solve_options(), workers=workers, strict=config.strict)
    parameters = sum(p.numel() for p in model.parameters())
    return {
        "test_loss": result.loss,
        "test_accuracy": result.accuracy,
        "test_mae": result.mae,
        "test_vf_evals": result.vf_evals,
        "test_failed": result.failed,
        "parameters": parameters,
    }
