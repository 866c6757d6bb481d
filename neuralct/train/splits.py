"""The data of a run: train, validation and test splits, from a named dataset or the user's files.

`load_splits(config)` reads the data, splits it, drops observations (`missing`), fits the
normalisation on the training split alone and applies it to all three. What it chose and fitted
is a [`DataRecord`][neuralct.train.splits.DataRecord], written to the run folder as `data.json`
and read back by `evaluate`, so a finished run is re-scored on exactly its own test series,
with its own class labels and normalisation statistics.

Splits:

- test: the dataset's published test split; for files, `test_data`, else the file's `split`
  column, else a seeded draw of `TEST_FRACTION` of the series, stratified by class
  for classification (the test ids are recorded in `data.json`);
- validation: a seeded `VAL_FRACTION` of the training series; for forecasting (`task:
  forecasting`, and the `co2` dataset) the last `VAL_FRACTION` of the training period instead,
  with the training windows that overlap it left out, so validation looks at the future as the
  test split does.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ..data.datasets import forecasting, load
from ..data.datasets._common import generator_for
from ..data.files import SeriesFile, read_series_file
from ..data.series import IrregularBatch
from ..data.transforms import Normalize, drop_observations
from ..errors import InvalidInputError
from .config import FitConfig, naming_options

VAL_FRACTION = 0.15
TEST_FRACTION = 0.2
_FORECASTING_DATASETS = {"co2": forecasting.co2_overlap}  # name -> windows each window overlaps, from its options


class ClassOnlyInTestWarning(UserWarning):
    """A class label occurs in the test split but not in the training split: the model cannot learn it."""


@dataclass(frozen=True)
class DataRecord:
    """What a run's data pipeline chose and fitted (`data.json` in the run folder).

    Args:
        task: `"classification"`, `"regression"` or `"forecasting"`.
        classes: class index -> label as the data wrote it (`None` for regression).
        channels: the input channels' names (`None` for a named dataset).
        normalization: the fitted normalisation (`Normalize.to_dict()`).
        test_ids: the series drawn as the test split of a file that had none (else `None`).
        files: each data file with the SHA-256 of its contents.
    """

    task: str
    classes: tuple[str, ...] | None
    channels: tuple[str, ...] | None
    normalization: dict
    test_ids: tuple[str, ...] | None = None
    files: dict[str, str] | None = None

    def to_json(self) -> bytes:
        """The record as the bytes of `data.json` (the caller writes them atomically)."""
        return (json.dumps(asdict(self), indent=1) + "\n").encode()

    @classmethod
    def read(cls, path: Path) -> DataRecord:
        """The record saved in `path` (a `data.json`)."""
        saved = json.loads(Path(path).read_text())
        for key in ("classes", "channels", "test_ids"):
            saved[key] = None if saved[key] is None else tuple(saved[key])
        return cls(**saved)


@dataclass(frozen=True)
class Splits:
    """The normalised train, validation and test batches of a run, and how they were made."""

    train: IrregularBatch
    val: IrregularBatch
    test: IrregularBatch
    record: DataRecord

    @property
    def class_count(self) -> int | None:
        """The number of class labels (those of the training file and any only in the test file),
        or `None` when the data does not name them (a named dataset, a regression)."""
        return None if self.record.classes is None else len(self.record.classes)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Splits:
        """The three splits on `device` (floating tensors in `dtype` when given)."""
        train, val, test = (split.to(device, dtype) for split in (self.train, self.val, self.test))
        return Splits(train, val, test, self.record)


def load_splits(config: FitConfig, saved: DataRecord | None = None) -> Splits:
    """The run's splits (see the module docstring); with `saved`, those of a finished run: its
    test ids, class labels and normalisation statistics.

    Raises:
        InvalidInputError: a dataset or file that cannot be read (naming it), a split left empty.
    """
    if config.data is None:
        full, test, record = _named_dataset(config)
    else:
        full, test, record = _user_files(config, saved)
    train, val = _validation_split(full, config)
    if saved is not None:
        normalize = Normalize.from_dict(saved.normalization)
    else:
        normalize = Normalize.from_spec(config.normalize, train)
    record = replace(record, normalization=normalize.to_dict())
    return Splits(normalize(train), normalize(val), normalize(test), record)


def run_splits(config: FitConfig, run_dir: Path | None) -> Splits:
    """`load_splits` for the run in `run_dir`: with its `data.json` (test series, labels,
    statistics) when it has one, else as a new run would load them."""
    saved = None if run_dir is None else Path(run_dir) / "data.json"
    return load_splits(config, DataRecord.read(saved) if saved is not None and saved.is_file() else None)


def _named_dataset(config: FitConfig) -> tuple[IrregularBatch, IrregularBatch, DataRecord]:
    common = {"missing_rate": config.missing_rate, "seed": config.seed, **config.dataset_options}
    with naming_options("dataset_options"):
        full, test = (load(config.dataset, split, **common) for split in ("train", "test"))
    task = config.task or _task_of(full, forecast=config.dataset in _FORECASTING_DATASETS)
    return full, test, DataRecord(task=task, classes=None, channels=None, normalization={})


def _user_files(config: FitConfig, saved: DataRecord | None) -> tuple[IrregularBatch, IrregularBatch, DataRecord]:
    read_task = "regression" if config.task == "forecasting" else config.task
    options = {"target": config.target, "task": read_task, "time_scale": config.time_scale}
    data = read_series_file(config.data, **options)
    files = {str(Path(config.data).resolve()): _sha256(config.data)}
    test_ids = None
    if config.test_data is not None:
        test = read_series_file(config.test_data, **options)
        files[str(Path(config.test_data).resolve())] = _sha256(config.test_data)
        train, test, classes = data.batch, *_shared_classes(data, test)
    elif data.split is not None:
        (train, test), classes = _column_split(data), data.classes
    else:
        test_ids = saved.test_ids if saved is not None else _draw_test_ids(data, config.seed)
        train, test = _split_by_ids(data, test_ids)
        classes = data.classes
    _check_saved_files(saved, files)
    if config.missing_rate:
        train, test = (
            drop_observations(batch, config.missing_rate, generator=generator_for(config.seed, split, stream="missing"))
            for batch, split in ((train, "train"), (test, "test"))
        )
    task = config.task or data.task
    record = DataRecord(task, classes, data.channels, {}, test_ids=test_ids, files=files)
    return train, test, record


def _task_of(batch: IrregularBatch, forecast: bool) -> str:
    if batch.targets is not None and batch.targets.dtype == torch.long:
        return "classification"
    return "forecasting" if forecast else "regression"


def _shared_classes(train: SeriesFile, test: SeriesFile) -> tuple[IrregularBatch, tuple[str, ...] | None]:
    """The test batch with its class indices mapped onto the training file's labels (a label that
    only the test file has is appended, with a warning); and the joint labels."""
    if train.classes is None or test.classes is None:
        if (train.classes is None) != (test.classes is None):
            raise InvalidInputError(
                f"{test.path.name} and {train.path.name} must both hold class labels or both numeric targets"
            )
        return test.batch, None
    extra = [label for label in test.classes if label not in train.classes]
    _warn_test_only(test.path, extra)
    classes = (*train.classes, *extra)
    lookup = torch.tensor([classes.index(label) for label in test.classes])
    return replace(test.batch, targets=lookup[test.batch.targets]), classes


def _column_split(data: SeriesFile) -> tuple[IrregularBatch, IrregularBatch]:
    rows = {name: [i for i, split in enumerate(data.split) if split == name] for name in ("train", "test")}
    for name, index in rows.items():
        if not index:
            raise InvalidInputError(f"{data.path.name}: the `split` column marks no series {name!r}")
    test_classes = set(data.batch.targets[rows["test"]].tolist()) if data.classes is not None else set()
    only_test = test_classes - set(data.batch.targets[rows["train"]].tolist()) if test_classes else set()
    _warn_test_only(data.path, [data.classes[i] for i in sorted(only_test)])
    return data.batch.select(rows["train"]), data.batch.select(rows["test"])


def _draw_test_ids(data: SeriesFile, seed: int) -> tuple[str, ...]:
    """A seeded `TEST_FRACTION` of the series (stratified by class for classification)."""
    generator = generator_for(seed, "test", stream="split")
    groups = [torch.arange(data.batch.batch_size)]
    if data.classes is not None:
        groups = [torch.nonzero(data.batch.targets == k).flatten() for k in range(len(data.classes))]
    chosen = []
    for group in groups:
        count = math.floor(TEST_FRACTION * len(group) + 0.5) if len(group) > 1 else 0
        chosen += group[torch.randperm(len(group), generator=generator)[:count]].tolist()
    if not chosen or len(chosen) == data.batch.batch_size:
        raise InvalidInputError(
            f"{data.path.name}: {data.batch.batch_size} series are too few to draw a test split; give `test_data`"
        )
    return tuple(data.ids[i] for i in sorted(chosen))


def _split_by_ids(data: SeriesFile, test_ids: tuple[str, ...]) -> tuple[IrregularBatch, IrregularBatch]:
    chosen = set(test_ids)
    unknown = chosen - set(data.ids)
    if unknown:
        raise InvalidInputError(f"{data.path.name} no longer holds the run's test series {sorted(unknown)[:5]}")
    test = [i for i, name in enumerate(data.ids) if name in chosen]
    train = [i for i, name in enumerate(data.ids) if name not in chosen]
    return data.batch.select(train), data.batch.select(test)


def _validation_split(full: IrregularBatch, config: FitConfig) -> tuple[IrregularBatch, IrregularBatch]:
    """(train, validation): a seeded draw, or for forecasting the last stretch of the period."""
    cut = max(1, round(VAL_FRACTION * full.batch_size))
    if full.batch_size - cut < 1:
        raise InvalidInputError(
            f"the training split has {full.batch_size} series: too few to hold out a validation split"
        )
    if config.task == "forecasting" or (config.task is None and config.dataset in _FORECASTING_DATASETS):
        return _chronological_split(full, cut, config)
    order = torch.randperm(full.batch_size, generator=torch.Generator().manual_seed(config.seed))
    return full.select(order[cut:]), full.select(order[:cut])


def _chronological_split(full: IrregularBatch, cut: int, config: FitConfig) -> tuple[IrregularBatch, IrregularBatch]:
    """The last `cut` series (in time order) validate; training keeps the series that end before
    the validation period starts (a named dataset's overlapping windows are counted by its
    overlap rule, a file's by the series' own times)."""
    if config.data is None:
        overlap = _FORECASTING_DATASETS[config.dataset](**config.dataset_options)
        order = torch.arange(full.batch_size)
        keep = max(0, full.batch_size - cut - overlap)
        train_rows = order[:keep]
    else:
        first = full.times[:, 0]
        order = torch.argsort(first, stable=True)
        val_start = first[order[-cut:]].min()
        last = full.times.gather(1, (full.lengths - 1)[:, None]).squeeze(1)
        train_rows = order[:-cut][last[order[:-cut]] < val_start]
    if train_rows.numel() == 0:
        raise InvalidInputError(
            "no training series ends before the validation period starts: too little data to forecast"
        )
    return full.select(train_rows), full.select(order[-cut:])


def _warn_test_only(path: Path, labels: list[str]) -> None:
    """`ClassOnlyInTestWarning` naming `labels`, when there are any."""
    if labels:
        warnings.warn(
            f"{path.name}: class(es) {', '.join(map(repr, labels))} occur in the test split only; "
            "the model cannot learn them",
            ClassOnlyInTestWarning,
            stacklevel=4,
        )


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check_saved_files(saved: DataRecord | None, files: dict[str, str]) -> None:
    """Warn when a file's contents changed since the run was trained on it."""
    if saved is None or saved.files is None:
        return
    for path, digest in files.items():
        if saved.files.get(path, digest) != digest:
            warnings.warn(f"{path} changed since the run was trained on it (its SHA-256 differs)", stacklevel=3)
