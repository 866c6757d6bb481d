"""Targets as files write them: class labels of any kind mapped to 0..K-1, regression targets as numbers.

A file's last field (`.ts`), target column (CSV) or `targets` array (`.npz`) holds labels as
text. Classification maps them to class indices through an order of the classes: the order a
`.ts` header declares, one given by the caller (so a test file shares the train file's
mapping), or `label_order`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .base import DataFileError


def label_order(labels: Iterable[str]) -> tuple[str, ...]:
    """The classes of `labels`, each once: sorted numerically when every label is a number
    ("1", "2", "10"), else sorted as strings. Index i of the result is class i."""
    unique = set(labels)
    if all(_number(label) is not None for label in unique):
        return tuple(sorted(unique, key=lambda label: (_number(label), label)))
    return tuple(sorted(unique))


def infer_task(labels: Iterable[str]) -> str:
    """ "classification" when every label is written as an integer or is not a number, else "regression"."""
    for label in labels:
        if _number(label) is not None and not _integer(label):
            return "regression"
    return "classification"


def class_indices(labels: Sequence[str], classes: Sequence[str], path: str, where: Sequence[str]) -> np.ndarray:
    """`[B]` int64 index of each label in `classes`.

    Raises:
        DataFileError: a label that is not among `classes`, naming the file and the series.
    """
    lookup = {name: i for i, name in enumerate(classes)}
    for label, place in zip(labels, where):
        if label not in lookup:
            raise DataFileError(f"{path}: {place}: label {label!r} is not among the classes {list(classes)}")
    return np.array([lookup[label] for label in labels], dtype=np.int64)


def regression_targets(labels: Sequence[str], path: str, where: Sequence[str]) -> np.ndarray:
    """`[B]` float64 targets read from `labels`.

    Raises:
        DataFileError: a target that is not a finite number, naming the file and the series.
    """
    numbers = [_number(label) for label in labels]
    for number, label, place in zip(numbers, labels, where):
        if number is None or not np.isfinite(number):
            raise DataFileError(f"{path}: {place}: a regression target must be a finite number; got {label!r}")
    return np.array(numbers, dtype=np.float64)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
