"""Argument checks the models share: each raises `InvalidInputError` naming the argument."""

from __future__ import annotations

import math

from ..data.series import IrregularBatch
from ..errors import InvalidInputError


def check_int(name: str, value: object, low: int = 1) -> None:
    """Raise unless `value` is an int (not a bool) of at least `low` (a positive int by default)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        expected = "a positive int" if low == 1 else f"an int >= {low}"
        raise InvalidInputError(f"`{name}` must be {expected}; got {value!r}")


def check_sizes(**sizes: object) -> None:
    """Raise unless every keyword's value is a positive int."""
    for name, value in sizes.items():
        check_int(name, value)


def check_number(name: str, value: object, low: float, high: float = math.inf, *, open_low: bool = False) -> float:
    """`value` as a float; raise unless it is a finite number in `[low, high]` (`(low, high]` with `open_low`)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and value <= high  # type: ignore[operator]
    if not ok:
        bounds = f"{'(' if open_low else '['}{low}, {high}{']' if high < math.inf else ')'}"
        raise InvalidInputError(f"`{name}` must be a finite number in {bounds}; got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_batch(batch: object, channels: int) -> None:
    """Raise unless `batch` is an `IrregularBatch` with `channels` channels."""
    if not isinstance(batch, IrregularBatch):
        raise InvalidInputError(f"`batch` must be an IrregularBatch; got {type(batch).__name__}")
    if batch.channels != channels:
        raise InvalidInputError(f"`batch` must have {channels} channels (the model's); got {batch.channels}")
