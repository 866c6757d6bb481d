"""Series as a CSV file in long format: one row per observation.

```text
id,time,heart_rate,temperature,target,split
p1,0.0,71,36.6,sepsis,train
p1,0.5,,36.9,sepsis,train
p2,0.0,80,,healthy,test
```

A header is required. Columns: `id`, `time`, one per channel (an empty cell is not observed,
so is `nan`), the target column (`target` unless named otherwise; constant within an id) and an
optional `split` (`train` or `test`, constant within an id). Column names are matched without
regard to case. The rows of one id need not be contiguous (series keep the order in which their
ids first appear), but their times must increase in file order. A wide file (one row per series,
no `time` column) is refused. Read with the standard `csv` module.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .base import SPLITS, DataFileError, SeriesTable, number_text

LONG_LAYOUT = "id,time,<channel columns...>,target[,split]"
_RESERVED = ("id", "time", "split")


@dataclass(frozen=True)
class _Layout:
    """Where the columns of a long CSV file are: `width` fields, names as written."""

    names: tuple[str, ...]
    id: int
    time: int
    target: int
    split: int | None
    channels: tuple[int, ...]


@dataclass
class _Rows:
    """One id's rows so far (filled while reading)."""

    label: str
    split: str | None
    line: int
    times: list[float] = field(default_factory=list)
    values: list[list[float]] = field(default_factory=list)


def read_csv(path: Path, target: str | None) -> SeriesTable:
    """A long-format CSV file as a `SeriesTable`.

    Args:
        path: the file.
        target: the target column (`None`: "target").

    Raises:
        DataFileError: no header or a wide layout, a missing target column, a row with the wrong
            number of fields, a value that is not a number, a time that does not increase within
            an id, a target or split that changes within an id, or no data row.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:  # spreadsheets may write a BOM
        reader = csv.reader(handle)
        layout = _layout(path, next(reader, []), target or "target")
        series: dict[str, _Rows] = {}
        for row in reader:
            if row:
                _add_row(f"{path}: line {reader.line_num}", reader.line_num, row, layout, series)
    if not series:
        raise DataFileError(f"{path}: expected rows after the header ({LONG_LAYOUT}); found none")
    if len(series) > 1 and all(len(rows.times) == 1 for rows in series.values()):
        raise DataFileError(
            f"{path}: every id has one row; expected the long layout {LONG_LAYOUT}, a row per observation"
        )
    items = list(series.values())
    return SeriesTable(
        path=path,
        ids=tuple(series),
        times=tuple(np.array(rows.times) for rows in items),
        values=tuple(np.array(rows.values) for rows in items),
        labels=tuple(rows.label for rows in items),
        classes=None,
        task=None,
        split=None if layout.split is None else tuple(str(rows.split) for rows in items),
        channels=tuple(layout.names[k] for k in layout.channels),
        where=tuple(f"id {name!r} (line {rows.line})" for name, rows in series.items()),
    )


def write_csv(table: SeriesTable) -> None:
    """Write `table` as a long-format CSV file (`id,time,<channels>,target[,split]`).

    Raises:
        DataFileError: a channel named like another column (`id`, `time`, `target`, `split`) or twice.
    """
    names = [name.lower() for name in (*_RESERVED, "target", *table.channels)]
    if len(set(names)) != len(names):
        raise DataFileError(
            f"{table.path}: channel names {list(table.channels)} must differ from each other and "
            f"from id, time, target and split"
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    split = ["split"] if table.split is not None else []
    writer.writerow(["id", "time", *table.channels, "target", *split])
    for b, (name, values) in enumerate(zip(table.ids, table.values)):
        times = number_text(table.grid(b), "")
        cells = [number_text(values[:, c], "") for c in range(values.shape[1])]
        tail = [table.labels[b], *([table.split[b]] if table.split is not None else [])]
        writer.writerows([name, t, *row, *tail] for t, *row in zip(times, *cells))
    table.path.write_text(buffer.getvalue())


def _layout(path: Path, header: list[str], target: str) -> _Layout:
    """Positions of the named columns and of the channels in `header`."""
    names = [name.strip().lower() for name in header]
    if "id" not in names or "time" not in names:
        raise DataFileError(
            f"{path}: line 1: expected a header in the long layout {LONG_LAYOUT} (one row per observation); "
            f"got {header[:8]}{' ...' if len(header) > 8 else ''}"
        )
    if target.lower() not in names:
        raise DataFileError(f"{path}: line 1: expected a target column {target!r}; the columns are {header}")
    if len(set(names)) != len(names):
        raise DataFileError(f"{path}: line 1: expected distinct column names; got {header}")
    named = {names.index(name) for name in (*_RESERVED, target.lower()) if name in names}
    channels = tuple(k for k in range(len(names)) if k not in named)
    if not channels:
        raise DataFileError(f"{path}: line 1: expected at least one channel column ({LONG_LAYOUT}); got {header}")
    return _Layout(
        names=tuple(name.strip() for name in header),
        id=names.index("id"),
        time=names.index("time"),
        target=names.index(target.lower()),
        split=names.index("split") if "split" in names else None,
        channels=channels,
    )


def _add_row(where: str, line: int, row: list[str], layout: _Layout, series: dict[str, _Rows]) -> None:
    """Check one data row and append it to its id's rows."""
    if len(row) != len(layout.names):
        raise DataFileError(f"{where}: expected {len(layout.names)} fields like the header; got {len(row)}")
    name, label = row[layout.id].strip(), row[layout.target].strip()
    time = _number(row[layout.time], where, "'time'")
    if not name or not math.isfinite(time):
        raise DataFileError(f"{where}: expected an id and a finite time; got {name!r} and {time}")
    split = None if layout.split is None else row[layout.split].strip().lower()
    if split is not None and split not in SPLITS:
        raise DataFileError(f"{where}: id {name!r}: expected split 'train' or 'test'; got {split!r}")
    rows = series.setdefault(name, _Rows(label, split, line))
    if rows.times and time <= rows.times[-1]:
        raise DataFileError(f"{where}: id {name!r}: expected a time after {rows.times[-1]:g}; got {time:g}")
    for key, value, first in (("target", label, rows.label), ("split", split, rows.split)):
        if value != first:
            raise DataFileError(
                f"{where}: id {name!r}: {key} {value!r} differs from {first!r} (line {rows.line}); "
                f"expected one {key} per id"
            )
    rows.times.append(time)
    rows.values.append([_number(row[k], where, repr(layout.names[k]), missing=True) for k in layout.channels])


def _number(text: str, where: str, what: str, missing: bool = False) -> float:
    """`text` as a float; an empty cell is NaN where `missing` allows it."""
    text = text.strip()
    if missing and not text:
        return math.nan
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is None or math.isinf(number):
        expected = "a number or an empty cell" if missing else "a number"
        raise DataFileError(f"{where}: expected {expected} in {what}; got {text!r}")
    return number
