"""Matching user-given names and options against the valid ones, with suggestions.

Shared by the registry, the dataset loader and the training config.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any


def did_you_mean(given: str, choices: list[str]) -> str:
    """ "; did you mean 'x'?" for the choices closest to `given`, or "" when none is close."""
    close = difflib.get_close_matches(given, choices, n=3)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def check_options(factory: Callable[..., Any], label: str, options: dict[str, Any], skip: int = 0) -> None:
    """Raise `TypeError` naming any option `factory` does not take, or a required one missing."""
    parameters = list(inspect.signature(factory).parameters.values())[skip:]
    valid = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for option in options:
        if option not in valid:
            hint = did_you_mean(option, valid)
            takes = f"valid options: {', '.join(valid)}" if valid else "it takes no options"
            raise TypeError(f"unknown option {option!r} for {label}{hint} ({takes})")
    missing = [p.name for p in parameters if p.name in valid and p.default is p.empty and p.name not in options]
    if missing:
        raise TypeError(f"{label} needs option(s) {', '.join(missing)}")
