"""A reader for the `.ts` text format of the UEA & UCR time series archives (as aeon ships them).

A file is a header of `@key value` lines, then `@data` and one line per series:

```text
@problemName JapaneseVowels
@timeStamps false
@univariate false
@dimensions 12
@equalLength false
@classLabel true 1 2 3 4 5 6 7 8 9
@data
1.86,1.89,1.94:-0.21,-0.19,-0.24: ... :3
```

On a data line the dimensions are separated by `:` and hold comma-separated values (`?` for a
missing one); the last field is the class label (`@classLabel true ...`) or the regression
target (`@targetLabel true`). Lines starting with `#` are comments. Keys are matched without
regard to case (the archive spells `@timeStamps` and `@timestamps` both ways). Series may have
different lengths, and so may the dimensions of one series (the shorter ones are padded with
NaN). Timestamped files (`@timeStamps true`, values written `(t,v)`) are not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InvalidInputError


@dataclass(frozen=True)
class TSFile:
    """The content of one `.ts` file.

    Args:
        series: one float64 array `[T_i, C]` per series, NaN where a value is missing.
        labels: the last field of every data line, as written (class name or target).
        classes: the class names declared by `@classLabel true ...`, in order; empty for regression.
        header: every `@key value` header line, keys lower-cased, values as written.
    """

    series: tuple[np.ndarray, ...]
    labels: tuple[str, ...]
    classes: tuple[str, ...]
    header: dict[str, str]

    def class_indices(self) -> np.ndarray:
        """`[N]` int64 index of each series' label in `classes` (the order the header declares)."""
        lookup = {name: i for i, name in enumerate(self.classes)}
        unknown = sorted(set(self.labels) - set(lookup))
        if not self.classes or unknown:
            raise InvalidInputError(
                f"labels must be among the declared classes {list(self.classes)}; got {unknown or 'no classes'}"
            )
        return np.array([lookup[label] for label in self.labels], dtype=np.int64)

    def targets(self) -> np.ndarray:
        """`[N]` float64 regression targets (the last field of each line read as a number)."""
        return np.array([float(label) for label in self.labels], dtype=np.float64)


def read_ts(path: str | Path) -> TSFile:
    """Parse a `.ts` file.

    Args:
        path: the file.

    Returns:
        Its series, labels, declared classes and header.

    Raises:
        InvalidInputError: a timestamped file, a line whose number of dimensions differs from
            `@dimensions`, a value that is not a number or `?`, or no `@data` section.
    """
    path = Path(path)
    header: dict[str, str] = {}
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if in_data:
            values, label = _parse_line(line, header, f"{path.name}:{number}")
            series.append(values)
            labels.append(label)
        elif line.lower() == "@data":
            in_data = True
            if header.get("timestamps", "false").lower() == "true":
                raise InvalidInputError(f"{path.name}: timestamped .ts files (@timeStamps true) are not supported")
        elif line.startswith("@"):
            key, _, value = line[1:].partition(" ")
            header[key.lower()] = value.strip()
    if not in_data:
        raise InvalidInputError(f"{path.name}: expected an @data line after the header; found none")
    declared = header.get("classlabel", "false").split()
    classes = tuple(declared[1:]) if declared and declared[0].lower() == "true" else ()
    return TSFile(series=tuple(series), labels=tuple(labels), classes=classes, header=header)


def _parse_line(line: str, header: dict[str, str], where: str) -> tuple[np.ndarray, str]:
    """One data line -> (`[T, C]` values, NaN-padded across dimensions; the label field)."""
    *fields, label = line.split(":")
    expected = int(header.get("dimensions", "1"))
    if len(fields) != expected:
        raise InvalidInputError(f"{where}: expected {expected} dimension(s) (@dimensions); got {len(fields)}")
    try:
        dims = [np.array([np.nan if v == "?" else float(v) for v in field.split(",")]) for field in fields]
    except ValueError as error:
        raise InvalidInputError(f"{where}: values must be numbers or '?'; {error}") from None
    length = max(len(d) for d in dims)
    values = np.full((length, len(dims)), np.nan)
    for channel, dim in enumerate(dims):
        values[: len(dim), channel] = dim
    return values, label.strip()
