"""Argument checks shared by every layer; each raises `InvalidInputError` naming the argument.

One wording for every message: "`name` must be <expected>; got <describe(value)>". This module
imports nothing from neuralct but `errors`, and not torch (so that `neuralct list` stays light),
so any layer may use it; the tensor checks are in `neuralct._validate`.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Sized
from typing import Any

from .errors import InvalidInputError

_SHORT_SEQUENCE = 6


def describe(value: object) -> str:
    """What `value` is, for the "got ..." part of an error message.

    Args:
        value: anything a user passed.

    Returns:
        For a tensor or array `[*shape]` its type, shape and dtype (and device when not the CPU);
        for a class, that it is a class; for a number, string, `None` or a short list of those,
        the repr; for another container its type and length; for anything else its type name.
    """
    if isinstance(value, type):
        return f"the class {value.__name__} (pass an instance)"
    if _is_plain(value):
        return repr(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a tensor or an array, read without importing torch
        device = getattr(value, "device", None)
        where = "" if device is None or getattr(device, "type", "cpu") == "cpu" else f" on {device}"
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}{where}"
    if isinstance(value, (list, tuple)) and len(value) <= _SHORT_SEQUENCE and all(map(_is_plain, value)):
        return repr(value)
    if isinstance(value, Sized):
        return f"{type(value).__name__} of {len(value)} items"
    return type(value).__name__


def _is_plain(value: object) -> bool:
    return value is None or isinstance(value, (numbers.Number, str, bytes))


def invalid(name: str, expected: str, value: object) -> InvalidInputError:
    """The error "`name` must be <expected>; got <describe(value)>", to raise."""
    return InvalidInputError(f"`{name}` must be {expected}; got {describe(value)}")


def check_int(name: str, value: object, low: int = 1, high: int | None = None, *, optional: bool = False) -> Any:
    """`value` unchanged; raise unless it is an int (not a bool) in `[low, high]`.

    Args:
        name: the argument's name, shown in the error.
        value: what was passed.
        low: the smallest valid value (1: a positive int).
        high: the largest valid value, or `None` for no upper bound.
        optional: also accept `None`.

    Raises:
        InvalidInputError: `value` is a bool, not an int, or out of range.
    """
    if optional and value is None:
        return None
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if not is_int or value < low or (high is not None and value > high):  # type: ignore[operator]
        if high is not None:
            expected = f"an int in [{low}, {high}]"
        else:
            expected = {0: "a non-negative int", 1: "a positive int"}.get(low, f"an int >= {low}")
        raise invalid(name, f"None or {expected}" if optional else expected, value)
    return value


def check_sizes(**sizes: object) -> None:
    """Raise unless every keyword's value is a positive int (see `check_int`)."""
    for name, value in sizes.items():
        check_int(name, value)


def check_number(
    name: str,
    value: object,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    open_low: bool = False,
    open_high: bool = False,
    optional: bool = False,
) -> Any:
    """`value` as a float; raise unless it is a finite number (not a bool) between `low` and `high`.

    Args:
        name: the argument's name, shown in the error.
        value: what was passed.
        low: the lower bound, included unless `open_low`.
        high: the upper bound, included unless `open_high`.
        open_low: exclude `low` itself.
        open_high: exclude `high` itself.
        optional: also accept `None` (returned as is).

    Raises:
        InvalidInputError: `value` is a bool, not a real number, NaN, infinite or out of range.
    """
    if optional and value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low)  # type: ignore[operator]
    ok = ok and (value < high if open_high else value <= high)  # type: ignore[operator]
    if not ok:
        expected = _number_range(low, high, open_low, open_high)
        raise invalid(name, f"None or {expected}" if optional else expected, value)
    return float(value)  # type: ignore[arg-type]


def _number_range(low: float, high: float, open_low: bool, open_high: bool) -> str:
    if high == math.inf:
        if low == 0 and open_low:
            return "a positive finite number"
        if low == -math.inf:
            return "a finite number"
        return f"a finite number {'>' if open_low else '>='} {low:g}"
    return f"a finite number in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"


def check_instance(name: str, value: object, kind: type | tuple[type, ...], expected: str | None = None) -> Any:
    """`value` unchanged; raise unless it is an instance of `kind`.

    Args:
        name: the argument's name, shown in the error.
        value: what was passed.
        kind: the class `value` must be an instance of, or a tuple of such classes.
        expected: how the expectation reads in the message (default "a <kind's name>", joined
            by "or" for a tuple).

    Raises:
        InvalidInputError: `value` is not an instance of `kind`.
    """
    if not isinstance(value, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        named = " or ".join(f"{'an' if k.__name__[0].lower() in 'aeiou' else 'a'} {k.__name__}" for k in kinds)
        raise invalid(name, expected or named, value)
    return value


def did_you_mean(given: str, choices: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the choices closest to `given`, or "" when none is close."""
    close = difflib.get_close_matches(given, list(choices), n=3)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def check_choice(name: str, value: object, choices: Iterable[Any]) -> Any:
    """`value` unchanged; raise unless it is one of `choices`, suggesting the closest.

    Args:
        name: the argument's name, shown in the error.
        value: what was passed.
        choices: the valid values (usually strings).

    Raises:
        InvalidInputError: `value` is not among `choices`; the message lists them and, for a
            string close to one of them, asks "did you mean ...?".
    """
    choices = tuple(choices)
    if _is_plain(value) and value in choices:
        return value
    hint = did_you_mean(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else ""
    listed = ", ".join(repr(c) for c in choices)
    raise InvalidInputError(f"`{name}` must be one of {listed}; got {describe(value)}{hint}")


__all__ = [
    "invalid",
    "check_choice",
    "check_instance",
    "check_int",
    "check_number",
    "check_sizes",
    "describe",
    "did_you_mean",
]
