"""What the file formats share: the error they raise, a file's content as arrays, and the loaded result."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..._checks import check_choice
from ...errors import InvalidInputError
from ..series import IrregularBatch

TASKS = ("classification", "regression")
SPLITS = ("train", "test")


class DataFileError(InvalidInputError):
    """A data file cannot be read or written: the message, one line, names the file, the line or
    series id, and what was expected."""


@dataclass(frozen=True)
class SeriesTable:
    """A file's content as NumPy arrays and text labels, between a reader (or writer) and a batch.

    Args:
        path: the file.
        ids: one name per series.
        times: one `[T_i]` float array per series, or `None` when the file has no times (index).
        values: one `[T_i, C]` float array per series, NaN where unobserved.
        labels: each series' target as the file writes it (class label or number).
        classes: the class order the file declares (`.ts` header, npz `classes`), or `None`.
        task: the task the file declares ("classification" or "regression"), or `None`.
        split: per series "train" or "test", or `None`.
        channels: one name per channel.
        where: per series, how an error message names it ("line 12", "id 'a' (line 3)").
    """

    path: Path
    ids: tuple[str, ...]
    times: tuple[np.ndarray, ...] | None
    values: tuple[np.ndarray, ...]
    labels: tuple[str, ...]
    classes: tuple[str, ...] | None
    task: str | None
    split: tuple[str, ...] | None
    channels: tuple[str, ...]
    where: tuple[str, ...]

    def grid(self, b: int) -> np.ndarray:
        """`[T_b]` times of series b: the file's, or the index 0, 1, ... when it has none."""
        return self.times[b] if self.times is not None else np.arange(len(self.values[b]), dtype=np.float64)


@dataclass(frozen=True)
class SeriesFile:
    """A loaded data file: the batch and what maps it back to the file's names.

    Args:
        batch: the series; targets `[B]` long class indices 0..K-1 (classification) or floats.
        classes: index -> the label as the file wrote it (`None` for regression).
        split: per series "train" or "test" (a CSV `split` column, an npz `split` array), or `None`.
        ids: one name per series (`.ts`: its position in the file, "0", "1", ...).
        channels: one name per channel (CSV columns, `.ts` "dim_0", ..., npz `channels`).
        task: "classification" or "regression".
        path: the file read.

    Raises:
        InvalidInputError: names whose counts do not match the batch, an unknown task or split
            name, or classes given for regression (or missing for classification).
    """

    batch: IrregularBatch
    classes: tuple[str, ...] | None
    split: tuple[str, ...] | None
    ids: tuple[str, ...]
    channels: tuple[str, ...]
    task: str
    path: Path

    def __post_init__(self) -> None:
        size = self.batch.batch_size
        check_choice("task", self.task, TASKS)
        if (self.classes is None) != (self.task == "regression"):
            raise InvalidInputError(f"`classes` must be given exactly for classification; got {self.classes!r}")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise InvalidInputError(f"`classes` must be distinct labels; got {list(self.classes)}")
        if len(self.ids) != size:
            raise InvalidInputError(f"`ids` must name the {size} series; got {len(self.ids)} names")
        if len(self.channels) != self.batch.channels:
            raise InvalidInputError(f"`channels` must name the {self.batch.channels} channels; got {self.channels}")
        if self.split is not None and (len(self.split) != size or not set(self.split) <= set(SPLITS)):
            raise InvalidInputError(f"`split` must give 'train' or 'test' for each of the {size} series")
        _check_targets(self.batch, self.classes)

    def select(self, split: str) -> SeriesFile:
        """The series of one split ("train" or "test"), names and classes kept.

        Raises:
            InvalidInputError: the file has no split, or no series in `split`.
        """
        rows = [i for i, name in enumerate(self.split or ()) if name == split]
        if not rows:
            raise InvalidInputError(
                f"`split` must name a split with series in {self.path}; got {split!r} "
                f"(the file's splits: {sorted(set(self.split)) if self.split else 'none'})"
            )
        return replace(
            self,
            batch=self.batch.select(torch.tensor(rows)),
            split=tuple(self.split[i] for i in rows),
            ids=tuple(self.ids[i] for i in rows),
        )


def number_text(values: np.ndarray, missing: str) -> list[str]:
    """Each number of `values` `[N]` in the shortest text that reads back to the same value in
    its dtype (`str(np.float32(0.1))` is "0.1"), `missing` for NaN."""
    return [missing if value != value else str(value) for value in values]


def _check_targets(batch: IrregularBatch, classes: tuple[str, ...] | None) -> None:
    """Raise unless the targets are `[B]` floats (regression) or long indices into `classes`."""
    targets = batch.targets
    if targets is None or targets.ndim != 1:
        raise InvalidInputError(f"`batch.targets` must be [B]; got {None if targets is None else tuple(targets.shape)}")
    if classes is None and not targets.is_floating_point():
        raise InvalidInputError(f"regression targets must be floating; got {targets.dtype}")
    indices = targets.dtype == torch.long and int(targets.min()) >= 0 and int(targets.max()) < len(classes or ())
    if classes is not None and not indices:
        raise InvalidInputError(
            f"class targets must be long indices into the {len(classes)} `classes`; "
            f"got {targets.dtype} in [{targets.min().item()}, {targets.max().item()}]"
        )
