"""Matching user-given option names against the parameters of the factory that takes them.

Shared by the registry and the dataset loader.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ._checks import did_you_mean


def check_option_names(factory: Callable[..., Any], label: str, options: dict[str, Any], skip: int = 0) -> None:
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
