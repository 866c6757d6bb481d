"""Ragged series in one `.npz` archive, without pickled objects.

| array | shape | holds |
|---|---|---|
| `times` | `[N]` | every series' times, concatenated |
| `values` | `[N, C]` (or `[N]`) | the values at those times, NaN where unobserved |
| `offsets` | `[B + 1]` | series b is rows `offsets[b]:offsets[b + 1]`; `offsets[0] = 0`, `offsets[B] = N` |
| `targets` | `[B]` | labels or targets: numbers, or strings (a fixed-width unicode array) |
| `channels`, `ids`, `split`, `classes` | `[C]`, `[B]`, `[B]`, `[K]` | optional names; `classes` fixes the class order |

Integer or string targets are class labels; floating ones regression targets. Loaded with
`np.load(..., allow_pickle=False)`.
"""

from __future__ import annotations

from pathlib import Path
from zipfile import BadZipFile

import numpy as np

from .base import SPLITS, DataFileError, SeriesTable

REQUIRED = ("times", "values", "offsets", "targets")
OPTIONAL = ("channels", "ids", "split", "classes")


def read_npz(path: Path) -> SeriesTable:
    """An `.npz` archive as a `SeriesTable`.

    Raises:
        DataFileError: not an npz archive, an array missing, of the wrong shape or holding
            objects, offsets that do not cut `times` into non-empty series, or a split other
            than "train" and "test".
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in (*REQUIRED, *OPTIONAL) if name in archive.files}
    except (BadZipFile, OSError, ValueError, TypeError) as error:  # TypeError: a lone .npy array
        raise DataFileError(f"{path}: expected an npz archive of plain arrays {list(REQUIRED)}; {error}") from None
    missing = [name for name in REQUIRED if name not in arrays]
    if missing:
        raise DataFileError(f"{path}: expected the arrays {list(REQUIRED)}; missing {missing}")
    times, values, offsets = arrays["times"], arrays["values"], arrays["offsets"]
    values = values[:, None] if values.ndim == 1 else values
    _check_offsets(path, offsets, len(times))
    count = len(offsets) - 1
    _check_shape(path, "times", times, (len(times),), "f")
    _check_shape(path, "values", values, (len(times), values.shape[-1]), "fiu")
    _check_shape(path, "targets", arrays["targets"], (count,), "fiuU")
    sizes = {"channels": values.shape[1], "ids": count, "split": count, "classes": None}
    names = {name: _names(path, name, arrays.get(name), size) for name, size in sizes.items()}
    ids = names["ids"] or tuple(str(b) for b in range(count))
    if names["split"] is not None and not set(names["split"]) <= set(SPLITS):
        raise DataFileError(f"{path}: expected `split` entries 'train' or 'test'; got {sorted(set(names['split']))}")
    cuts = list(zip(offsets[:-1], offsets[1:]))
    return SeriesTable(
        path=path,
        ids=ids,
        times=tuple(times[a:b].astype(np.float64) for a, b in cuts),
        values=tuple(values[a:b].astype(np.float64) for a, b in cuts),
        labels=tuple(str(label) for label in arrays["targets"].tolist()),
        classes=names["classes"],
        task="regression" if arrays["targets"].dtype.kind == "f" else ("classification" if names["classes"] else None),
        split=names["split"],
        channels=names["channels"] or tuple(f"dim_{c}" for c in range(values.shape[1])),
        where=tuple(f"series {b} (id {name!r})" for b, name in enumerate(ids)),
    )


def write_npz(table: SeriesTable) -> None:
    """Write `table` as an `.npz` archive (the layout above); class labels go in as strings
    with their order in `classes`, regression targets as floats."""
    values = table.values
    times = [table.grid(b) for b in range(len(values))]
    regression = table.classes is None
    arrays = {
        "times": np.concatenate(times),
        "values": np.concatenate(values),
        "offsets": np.cumsum([0, *(len(v) for v in values)]).astype(np.int64),
        "targets": np.array([float(x) for x in table.labels], dtype=values[0].dtype)
        if regression
        else np.array(table.labels, dtype=str),
        "channels": np.array(table.channels, dtype=str),
        "ids": np.array(table.ids, dtype=str),
        **({"split": np.array(table.split, dtype=str)} if table.split is not None else {}),
        **({"classes": np.array(table.classes, dtype=str)} if not regression else {}),
    }
    with table.path.open("wb") as handle:
        np.savez(handle, **arrays)


def _check_offsets(path: Path, offsets: np.ndarray, total: int) -> None:
    ordered = offsets.ndim == 1 and len(offsets) >= 2 and offsets.dtype.kind in "iu"
    ordered = ordered and bool((np.diff(offsets) > 0).all())
    if not ordered or offsets[0] != 0 or offsets[-1] != total:
        raise DataFileError(
            f"{path}: expected `offsets` [B + 1] integers rising strictly from 0 to len(times) = {total}; "
            f"got {offsets.dtype} {offsets.tolist()[:8]}{' ...' if offsets.size > 8 else ''}"
        )


def _check_shape(path: Path, name: str, array: np.ndarray, shape: tuple[int, ...], kinds: str) -> None:
    if array.shape != shape or array.dtype.kind not in kinds:
        holding = {"f": "floats", "fiu": "numbers", "fiuU": "numbers or strings", "U": "strings"}[kinds]
        raise DataFileError(
            f"{path}: expected `{name}` of shape {shape} holding {holding}; got {array.dtype} {array.shape}"
        )


def _names(path: Path, name: str, array: np.ndarray | None, size: int | None) -> tuple[str, ...] | None:
    """An optional 1-D unicode array of `size` names (any length when `size` is None) as a tuple."""
    if array is None:
        return None
    _check_shape(path, name, array, (size if size is not None else array.size,), "U")
    return tuple(array.tolist())
