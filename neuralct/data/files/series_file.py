"""Read and write series files by extension: `.ts`, long `.csv`, `.npz`.

```py
from neuralct.data import read_series_file, write_series_file

train = read_series_file("gestures_train.ts")  # SeriesFile: .batch, .classes, .ids, .channels, ...
test = read_series_file("gestures_test.csv", classes=train.classes)  # the train file's label mapping
write_series_file(train, "gestures_train.npz")
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..._checks import check_choice, check_number, describe
from ...errors import InvalidInputError
from ..arrays import first_unordered, from_arrays
from ..series import IrregularBatch
from .base import TASKS, DataFileError, SeriesFile, SeriesTable
from .csv import read_csv, write_csv
from .labels import class_indices, infer_task, label_order, regression_targets
from .npz import read_npz, write_npz
from .ts import ts_table, write_ts

_READERS: dict[str, Callable[[Path, str | None], SeriesTable]] = {
    ".ts": lambda path, target: ts_table(path),
    ".csv": read_csv,
    ".npz": lambda path, target: read_npz(path),
}
_WRITERS: dict[str, Callable[[SeriesTable], None]] = {".ts": write_ts, ".csv": write_csv, ".npz": write_npz}


def read_series_file(
    path: str | Path,
    *,
    target: str | None = None,
    task: str | None = None,
    time_scale: float = 1.0,
    classes: Sequence[str] | None = None,
) -> SeriesFile:
    """Load a `.ts`, long `.csv` or `.npz` file (chosen by extension, in any case) as a batch.

    Positions where no channel is observed are removed (their times go with them), so a file
    with empty rows gives truly irregular series.

    Args:
        path: the file.
        target: the CSV target column (`None`: "target"); only for CSV files.
        task: "classification", "regression" or `None`: what the `.ts` header declares, else
            classification when every target is written as an integer or is not a number.
        time_scale: every time is multiplied by it (series without times: `index * time_scale`).
        classes: the class order to map labels through (e.g. the train file's `classes`), or
            `None`: the order a `.ts` header or npz `classes` declares, else `label_order`.

    Returns:
        The [`SeriesFile`][neuralct.data.SeriesFile]: batch `[B, T, C]` in torch's default
        dtype, targets `[B]` (long class indices or floats), and the file's names.

    Raises:
        DataFileError: an unknown extension, a file that is missing, empty or malformed, a label
            not among `classes`, or a series with no observation (each message is one line
            naming the file and the line or series).
        InvalidInputError: `task`, `time_scale`, `target` or `classes` out of place.
    """
    path = Path(path)
    reader = _by_extension(path, _READERS)
    check_choice("task", task, (*TASKS, None))
    check_number("time_scale", time_scale, 0.0, open_low=True)
    if target is not None and path.suffix.lower() != ".csv":
        raise InvalidInputError(f"`target` names a CSV column; {path} is a {path.suffix} file with one target")
    if not path.is_file() or path.stat().st_size == 0:
        raise DataFileError(f"{path}: {'the file is empty' if path.is_file() else 'no such file'}; expected series")
    return _series_file(reader(path, target), task, time_scale, classes)


def write_series_file(
    data: IrregularBatch | SeriesFile,
    path: str | Path,
    *,
    classes: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    split: Sequence[str] | None = None,
) -> Path:
    """Write a batch as a `.ts`, long `.csv` or `.npz` file (by extension), to read back with
    [`read_series_file`][neuralct.data.read_series_file].

    Only the real positions of each series are written (times, values, NaN/empty where unobserved).

    Args:
        data: a batch with targets `[B]` (long: classes, floating: regression) or a `SeriesFile`
            (its classes, channels, split and ids are written unless given here).
        path: the file to write.
        classes: target index -> label (`None`: "0", "1", ...); classification only.
        channels: one name per channel (`None`: "dim_0", ...); not stored by `.ts`.
        split: per series "train" or "test" (`None`: no split column); not for `.ts`.

    Returns:
        The path written.

    Raises:
        InvalidInputError: a batch without `[B]` targets, names whose counts do not fit the batch,
            classes for a regression batch.
        DataFileError: what the format cannot hold (a split in `.ts`, a class label with spaces
            in `.ts`, a channel named like a CSV column).
    """
    path = Path(path)
    writer = _by_extension(path, _WRITERS)
    writer(_table(_named(data, classes, channels, split), path))
    return path


def save_npz(data: IrregularBatch | SeriesFile, path: str | Path) -> Path:
    """Write `data` as a ragged, object-free `.npz` archive (`times`, `values`, `offsets`, `targets`,
    names): the same as `write_series_file(data, path)` for a path ending in `.npz`.

    Raises:
        DataFileError: `path` does not end in `.npz`.
    """
    if Path(path).suffix.lower() != ".npz":
        raise DataFileError(f"{path}: expected a path ending in .npz; got {Path(path).suffix or 'no extension'}")
    return write_series_file(data, path)


def _by_extension(path: Path, table: dict):
    suffix = path.suffix.lower()
    if suffix not in table:
        raise DataFileError(f"{path}: expected one of the extensions {sorted(table)}; got {suffix or 'none'!r}")
    return table[suffix]


def _series_file(table: SeriesTable, task: str | None, time_scale: float, classes: Sequence[str] | None) -> SeriesFile:
    """The batch of a table: empty positions removed, times scaled, labels mapped."""
    task = task or table.task or infer_task(table.labels)
    times, values = _observed(table, time_scale)
    if task == "regression":
        if classes is not None:
            raise InvalidInputError(f"`classes` applies to classification; {table.path} is read as regression")
        order, targets = None, torch.as_tensor(regression_targets(table.labels, table.path, table.where))
    else:
        order = tuple(classes) if classes is not None else (table.classes or label_order(table.labels))
        targets = torch.as_tensor(class_indices(table.labels, order, table.path, table.where))
    return SeriesFile(
        batch=from_arrays(times, values, targets),
        classes=order,
        split=table.split,
        ids=table.ids,
        channels=table.channels,
        task=task,
        path=table.path,
    )


def _observed(table: SeriesTable, time_scale: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per series, the times (scaled) and values of the positions where some channel is observed.

    Raises:
        DataFileError: a series with no observation, or times that are not finite and strictly
            increasing (also once in torch's default dtype).
    """
    dtype = torch.get_default_dtype()
    times, values = [], []
    for b, rows in enumerate(table.values):
        grid = table.grid(b) * time_scale
        kept = ~np.isnan(rows).all(axis=1)
        if not kept.any():
            raise DataFileError(f"{table.path}: {table.where[b]}: expected at least one observed value; got none")
        for times_in, name in ((grid[kept], "float64"), (torch.as_tensor(grid[kept]).to(dtype), str(dtype))):
            k = first_unordered(times_in)
            if k is not None:
                before = f" after {float(times_in[k - 1]):.9g}" if k else ""
                raise DataFileError(
                    f"{table.path}: {table.where[b]}: expected finite times increasing in {name}; "
                    f"got {float(times_in[k]):.9g}{before} (subtract an offset or use float64 for long clocks)"
                )
        times.append(grid[kept])
        values.append(rows[kept])
    return times, values


def _named(
    data: IrregularBatch | SeriesFile,
    classes: Sequence[str] | None,
    channels: Sequence[str] | None,
    split: Sequence[str] | None,
) -> SeriesFile:
    """`data` as a `SeriesFile` with the names given here (a batch gets "0", "1", ... and "dim_0", ...)."""
    batch = data.batch if isinstance(data, SeriesFile) else data
    if not isinstance(batch, IrregularBatch) or batch.targets is None or batch.targets.ndim != 1:
        targets = getattr(batch, "targets", None)
        raise InvalidInputError(
            f"`data` must be an IrregularBatch with targets [B] or a SeriesFile; got {describe(data)}"
            f" with targets {None if targets is None else tuple(targets.shape)}"
        )
    if not isinstance(data, SeriesFile):
        regression = batch.targets.is_floating_point()
        data = SeriesFile(
            batch=batch,
            classes=None if regression else tuple(str(i) for i in range(int(batch.targets.max()) + 1)),
            split=None,
            ids=tuple(str(b) for b in range(batch.batch_size)),
            channels=tuple(f"dim_{c}" for c in range(batch.channels)),
            task="regression" if regression else "classification",
            path=Path(),
        )
    given = {"classes": classes, "channels": channels, "split": split}
    return replace(data, **{key: tuple(value) for key, value in given.items() if value is not None})


def _table(file: SeriesFile, path: Path) -> SeriesTable:
    """The arrays and text labels of `file` to write (each series' real positions only)."""
    batch = file.batch
    lengths = batch.lengths.tolist()
    times, values = batch.times.cpu().numpy(), batch.with_nan().cpu().numpy()
    targets = batch.targets.cpu()
    if file.classes is None:
        labels = tuple(str(x) for x in targets.numpy())
    else:
        labels = tuple(file.classes[i] for i in targets.tolist())
    return SeriesTable(
        path=path,
        ids=file.ids,
        times=tuple(times[b, :n] for b, n in enumerate(lengths)),
        values=tuple(values[b, :n] for b, n in enumerate(lengths)),
        labels=labels,
        classes=file.classes,
        task=file.task,
        split=file.split,
        channels=file.channels,
        where=tuple(f"series {b}" for b in range(batch.batch_size)),
    )
