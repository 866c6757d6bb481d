"""Checks of path queries made on the device and read back later, all in one transfer.

A query of a path that only some times can answer (a `BrownianGrid` between its grid times)
checks its times; reading that check back to the host costs a device sync per query, which
inside a solve is a sync per step. While a `DeferredChecks` is current (`with
checks:`), a path notes its check there instead and answers at once; whoever
made it current reads every noted check in one transfer later (`passed`) and has the first
that failed raise its error (`conclude`), naming the query as an immediate check would. The
step loop does this at its own reads (`neuralct._loop.checks`); outside a solve no
`DeferredChecks` is current and a path checks each query immediately.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token

import torch
from torch import Tensor

_CURRENT: ContextVar[DeferredChecks | None] = ContextVar("neuralct_deferred_checks", default=None)


class DeferredChecks:
    """The checks noted since the last read: for each, a boolean tensor that is True where the
    check passed and a `report` that raises the check's error if any entry is False."""

    def __init__(self) -> None:
        self._noted: list[tuple[Tensor, Callable[[], None]]] = []
        self._tokens: list[Token[DeferredChecks | None]] = []

    def note(self, passed: Tensor, report: Callable[[], None]) -> None:
        """Note a check: `passed` a boolean tensor of any shape (every entry True when the
        check passed), `report` raises its error when it failed (it may read the device)."""
        self._noted.append((passed, report))

    def passed(self) -> Tensor | None:
        """`[]` boolean, on the device: whether every check noted since the last `conclude`
        passed; `None` when none was noted."""
        if not self._noted:
            return None
        return torch.cat([passed.reshape(-1) for passed, _ in self._noted]).all()

    def conclude(self, passed: bool) -> None:
        """Forget the noted checks; when `passed` (the value read of `passed()`) is False,
        have them report in the order they were noted, so that the first that failed raises.

        Raises:
            Whatever the first failed check's `report` raises (`InvalidInputError` for a
            `BrownianGrid` query off its grid).
        """
        noted, self._noted = self._noted, []
        if not passed:
            for _, report in noted:
                report()

    def __enter__(self) -> DeferredChecks:
        """`with checks:` makes these checks current for the block (a plain method rather than
        a generator: it runs once per step)."""
        self._tokens.append(_CURRENT.set(self))
        return self

    def __exit__(self, *exc_info: object) -> None:
        _CURRENT.reset(self._tokens.pop())


def current_checks() -> DeferredChecks | None:
    """The `DeferredChecks` that path queries note their checks in now, or `None`: check at once."""
    return _CURRENT.get()
