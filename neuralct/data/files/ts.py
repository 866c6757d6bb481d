"""The `.ts` text format of the UEA & UCR time series archives (as aeon ships them): read and write.

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
target (`@targetLabel true`). Lines starting with `#` or `%` are comments. Keys are matched
without regard to case (the archive spells `@timeStamps` and `@timestamps` both ways). Series
may have different lengths, and so may the dimensions of one series (the shorter ones are
padded with NaN at the end). With `@timeStamps true` every value is written `(t,v)`, t a number
or an ISO date-time (read as seconds since the file's earliest time); the dimensions of a
series may then have different times, and the series is observed at their union.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .base import DataFileError, SeriesTable, number_text
from .labels import class_indices

_PAIR = r"\(\s*([^(),]*?)\s*,\s*([^(),]*?)\s*\)"
_PAIRS = re.compile(rf"(?:{_PAIR}(?:\s*,\s*{_PAIR})*)?")
_UNSAFE_LABEL = re.compile(r"[\s:,()]")


@dataclass(frozen=True)
class TSFile:
    """The content of one `.ts` file.

    Args:
        series: one float64 array `[T_i, C]` per series, NaN where a value is missing.
        labels: the last field of every data line, as written (class name or target).
        classes: the class names declared by `@classLabel true ...`, in order; empty for regression.
        header: every `@key value` header line, keys lower-cased, values as written.
        times: one float64 array `[T_i]` per series for a timestamped file, else `None`.
        lines: the line number of each series in the file.
        path: the file.
    """

    series: tuple[np.ndarray, ...]
    labels: tuple[str, ...]
    classes: tuple[str, ...]
    header: dict[str, str]
    times: tuple[np.ndarray, ...] | None
    lines: tuple[int, ...]
    path: Path

    def class_indices(self) -> np.ndarray:
        """`[N]` int64 index of each series' label in `classes` (the order the header declares)."""
        return class_indices(self.labels, self.classes, self.path, tuple(f"line {n}" for n in self.lines))

    def targets(self) -> np.ndarray:
        """`[N]` float64 regression targets (the last field of each line read as a number)."""
        return np.array([float(label) for label in self.labels], dtype=np.float64)


def read_ts(path: str | Path) -> TSFile:
    """Parse a `.ts` file.

    Args:
        path: the file.

    Returns:
        Its series, labels, declared classes, header and (when timestamped) times.

    Raises:
        DataFileError: a line whose number of dimensions differs from `@dimensions` (or from the
            first line's), a value that is not a number or `?`, a malformed `(t,v)` pair, times
            that do not increase within a dimension, or no `@data` section.
    """
    path = Path(path)
    header: dict[str, str] = {}
    rows: list[tuple[np.ndarray | None, np.ndarray, str, int]] = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#%":
            continue
        if "data" in header:
            rows.append((*_parse_line(line, header, rows, f"{path}: line {number}"), number))
        elif line.lower() == "@data":
            header["data"] = ""
        elif line.startswith("@"):
            key, _, value = line[1:].partition(" ")
            header[key.lower()] = value.strip()
    if "data" not in header:
        raise DataFileError(f"{path}: expected an @data line after the header; found none")
    del header["data"]
    declared = header.get("classlabel", "false").split()
    times = [t for t, *_ in rows]
    return TSFile(
        series=tuple(values for _, values, *_ in rows),
        labels=tuple(label for *_, label, _ in rows),
        classes=tuple(declared[1:]) if declared and declared[0].lower() == "true" else (),
        header=header,
        times=tuple(_from_earliest(times, path)) if _flag(header, "timestamps") else None,
        lines=tuple(number for *_, number in rows),
        path=path,
    )


def ts_table(path: Path) -> SeriesTable:
    """A `.ts` file as a `SeriesTable`: ids "0", "1", ...;
    channels "dim_0", ...; the task the header declares."""
    file = read_ts(path)
    if not file.series:
        raise DataFileError(f"{path}: expected at least one series after @data; found none")
    if not _labelled(file.header):
        raise DataFileError(f"{path}: expected targets (@classLabel true ... or @targetLabel true); the file has none")
    task = "classification" if file.classes or _flag(file.header, "classlabel") else None
    return SeriesTable(
        path=path,
        ids=tuple(str(i) for i in range(len(file.series))),
        times=file.times,
        values=file.series,
        labels=file.labels,
        classes=file.classes or None,
        task="regression" if _flag(file.header, "targetlabel") else task,
        split=None,
        channels=tuple(f"dim_{c}" for c in range(file.series[0].shape[1])),
        where=tuple(f"line {number}" for number in file.lines),
    )


def write_ts(table: SeriesTable) -> None:
    """Write `table` as a `.ts` file, with `@timeStamps true` unless every series' times are
    0, 1, 2, ... (or absent). Channel names and ids are not stored (the format has no place for them).

    Raises:
        DataFileError: a split (one `.ts` file holds one split), or a class label with spaces,
            `:`, `,` or parentheses.
    """
    if table.split is not None:
        raise DataFileError(f"{table.path}: a .ts file holds one split; write train and test to separate files")
    for label in table.classes or ():
        if not label or _UNSAFE_LABEL.search(label):
            raise DataFileError(f"{table.path}: class label {label!r} cannot be written to .ts (spaces, ':', ',')")
    stamped = any(not np.array_equal(table.grid(b), np.arange(len(v))) for b, v in enumerate(table.values))
    lengths = {len(v) for v in table.values}
    channels = table.values[0].shape[1]
    missing = any(bool(np.isnan(v).any()) for v in table.values)
    lines = [
        f"@problemName {table.path.stem}",
        f"@timeStamps {str(stamped).lower()}",
        f"@missing {str(missing).lower()}",
        f"@univariate {str(channels == 1).lower()}",
        f"@dimensions {channels}",
        f"@equalLength {str(len(lengths) == 1).lower()}",
        *([f"@seriesLength {lengths.pop()}"] if len(lengths) == 1 else []),
        f"@classLabel true {' '.join(table.classes)}" if table.classes is not None else "@targetLabel true",
        "@data",
    ]
    for b, (values, label) in enumerate(zip(table.values, table.labels)):
        times = number_text(table.grid(b), "") if stamped else None
        dims = [_dimension(number_text(values[:, c], "?"), times) for c in range(channels)]
        lines.append(":".join([*dims, label]))
    table.path.write_text("\n".join(lines) + "\n")


def _dimension(values: list[str], times: list[str] | None) -> str:
    if times is None:
        return ",".join(values)
    return ",".join(f"({t},{v})" for t, v in zip(times, values))


def _parse_line(line: str, header: dict[str, str], rows: list, where: str) -> tuple[object, np.ndarray, str]:
    """One data line -> (times `[T]` or `None`, values `[T, C]` NaN-padded across dimensions, label)."""
    fields = line.split(":") if not _flag(header, "timestamps") else _split_stamped(line, where)
    label = fields.pop().strip() if _labelled(header) else ""
    expected = header.get("dimensions", str(rows[0][1].shape[1] if rows else len(fields)))
    if not expected.isdigit() or len(fields) != int(expected):
        raise DataFileError(f"{where}: expected {expected} dimension(s) (@dimensions); got {len(fields)}")
    if _flag(header, "timestamps"):
        times, values = _stamped(fields, where)
        return times, values, label
    try:
        dims = [np.array([np.nan if v.strip() == "?" else float(v) for v in field.split(",")]) for field in fields]
    except ValueError as error:
        raise DataFileError(f"{where}: values must be numbers or '?'; {error}") from None
    values = np.full((max(len(d) for d in dims), len(dims)), np.nan)
    for channel, dim in enumerate(dims):
        values[: len(dim), channel] = dim
    return None, values, label


def _split_stamped(line: str, where: str) -> list[str]:
    """Split a timestamped line at the `:` outside parentheses (ISO times hold colons)."""
    fields, depth, start = [], 0, 0
    for k, char in enumerate(line):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ":" and depth == 0:
            fields.append(line[start:k])
            start = k + 1
    if depth != 0:
        raise DataFileError(f"{where}: unbalanced parentheses; timestamped values must be written (t,v),(t,v),...")
    return [*fields, line[start:]]


def _stamped(fields: list[str], where: str) -> tuple[list[float | datetime], np.ndarray]:
    """`(t,v)` dimensions -> (the union of their times, values `[T, C]` NaN where a dimension has no value)."""
    dims = []
    for c, field in enumerate(fields):
        if not _PAIRS.fullmatch(field.strip()):
            raise DataFileError(f"{where}: dimension {c} must hold timestamped values (t,v),(t,v),...; got {field!r}")
        pairs = re.findall(_PAIR, field)
        try:
            dims.append(([_time(t) for t, _ in pairs], [np.nan if v == "?" else float(v) for _, v in pairs]))
        except ValueError as error:
            raise DataFileError(
                f"{where}: dimension {c}: expected (t,v) with t a number or date-time, v a number or '?'; {error}"
            ) from None
    if len({isinstance(t, datetime) for times, _ in dims for t in times}) > 1:
        raise DataFileError(f"{where}: expected timestamps that are all numbers or all date-times; got both")
    for c, (times, _) in enumerate(dims):
        if any(b <= a for a, b in zip(times, times[1:])):
            raise DataFileError(f"{where}: dimension {c}: expected increasing times; got {[str(t) for t in times]}")
    union = sorted(set().union(*(t for t, _ in dims)))
    position = {t: k for k, t in enumerate(union)}
    values = np.full((len(union), len(dims)), np.nan)
    for c, (times, column) in enumerate(dims):
        values[[position[t] for t in times], c] = column
    return union, values


def _time(text: str) -> float | datetime:
    try:
        return float(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _from_earliest(times: list, path: Path) -> list[np.ndarray]:
    """Times as float64 arrays; date-times as seconds since the file's earliest one."""
    dated = [isinstance(t, datetime) for row in times for t in row]
    if not any(dated):
        return [np.array(row, dtype=np.float64) for row in times]
    if not all(dated):
        raise DataFileError(f"{path}: expected timestamps that are all numbers or all date-times; got both")
    start = min(min(row) for row in times if row)
    return [np.array([(t - start).total_seconds() for t in row]) for row in times]


def _labelled(header: dict[str, str]) -> bool:
    """Whether a data line ends with a label: unless the header says `@classLabel false` and no `@targetLabel true`."""
    return _flag(header, "classlabel") or _flag(header, "targetlabel") or "classlabel" not in header


def _flag(header: dict[str, str], key: str) -> bool:
    return header.get(key, "false").split(" ")[0].lower() == "true"
