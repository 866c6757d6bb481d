"""What a training run shows while it runs: a progress bar per epoch and a line per finished epoch.

On a terminal the bar is redrawn in place after each minibatch with the epoch's running loss and
accuracy and the function evaluations per sample of the last step; when the output is a file or a
pipe (CI logs) only the epoch lines are written.

```text
epoch  7/60 [##########----------] 9/18  loss 0.4121  acc 0.871  evals/step 41
epoch  7/60  train loss 0.3990 acc 0.877 | val loss 0.4310 acc 0.862 | evals/sample 40 | 2.1 s
epoch  8/60  train loss 0.3871 acc 0.880 | val loss 0.4302 acc 0.862 | evals/sample 41 | 2.2 s | failed: 2 train, 0 val
```

Samples whose solves failed (left out of the scores) are counted at the end of the epoch's line,
and notes on the run folder (a run started afresh or resumed from its previous checkpoint) get a
line of their own.

The other long commands show their progress the same way: `PassBar` draws a bar over the
minibatches of an evaluation (on a terminal only, cleared when the pass ends), and `lines` writes
one line per step (a sweep's points, a stability report's sections). With `quiet`, none of them
writes anything.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from .loop import BatchReport


class Progress:
    """What `neuralct.train.run.fit` tells while it trains; this base shows nothing (subclass it
    to log elsewhere)."""

    def begin(self, epoch: int) -> None:
        """Epoch `epoch` (from 1) starts."""

    def batch(self, report: BatchReport) -> None:
        """A minibatch's step is done."""

    def epoch(self, row: dict) -> None:
        """An epoch is done and checkpointed; `row` is its metrics row (`neuralct.train.run.COLUMNS`)."""

    def note(self, text: str) -> None:
        """Something the user should know about the run folder (how a run was started or resumed)."""


class _Screen:
    """One line of `stream` that a bar redraws in place (on a terminal), and lines written below it.

    Args:
        stream: where to write (default: standard error).
        live: redraw the bar (default: when `stream` is a terminal; elsewhere only whole lines).
        quiet: write nothing at all.
        interval: the least seconds between two redraws (the last one of a pass is always drawn).
    """

    def __init__(self, stream: TextIO | None, live: bool | None, quiet: bool, interval: float) -> None:
        self.stream, self.quiet, self.interval = stream or sys.stderr, quiet, interval
        self.live = not quiet and (self.stream.isatty() if live is None else live)
        self.drawn_at, self.drawn = -float("inf"), 0

    def redraw(self, text: str, last: bool) -> None:
        """Draw `text` over the bar (when live, and not sooner than `interval` unless `last`)."""
        now = time.perf_counter()
        if not self.live or (now - self.drawn_at < self.interval and not last):
            return
        self.write("\r" + text.ljust(self.drawn))
        self.drawn_at, self.drawn = now, len(text)

    def line(self, text: str) -> None:
        """`text` on a line of its own, in place of the bar."""
        if not self.quiet:
            self.write(("\r" if self.live else "") + text.ljust(self.drawn) + "\n")
        self.drawn_at, self.drawn = -float("inf"), 0

    def clear(self) -> None:
        """Wipe the bar, so that what follows starts on a clean line."""
        if self.live and self.drawn:
            self.write("\r" + " " * self.drawn + "\r")
        self.drawn_at, self.drawn = -float("inf"), 0

    def write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


class ProgressBar(Progress):
    """Progress of a run's epochs, written to `stream`.

    Args:
        epochs: the run's number of epochs (for the `epoch k/N` label).
        stream: where to write (default: standard error).
        live: redraw a bar per minibatch (default: when `stream` is a terminal).
        quiet: write nothing (`--quiet`).
        width: characters of the bar.
        interval: the least seconds between two redraws (the last minibatch is always drawn).
    """

    def __init__(
        self,
        epochs: int,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        quiet: bool = False,
        width: int = 20,
        interval: float = 0.1,
    ) -> None:
        self.epochs, self.width, self.epoch_index = epochs, width, 1
        self.screen = _Screen(stream, live, quiet, interval)

    def begin(self, epoch: int) -> None:
        """Label the coming bar with `epoch`."""
        self.epoch_index = epoch

    def batch(self, report: BatchReport) -> None:
        """Redraw the bar after a minibatch (nothing when not live)."""
        text = f"{self._label()} {_bar(report, self.width)}  evals/step {report.vf_evals:.0f}"
        self.screen.redraw(text, report.batch == report.batches)

    def epoch(self, row: dict) -> None:
        """Replace the bar with the finished epoch's line (a metrics row of `neuralct.train.run`)."""
        self.epoch_index = row["epoch"]
        self.screen.line(
            f"{self._label()}  train loss {row['train_loss']:.4f}{_score(row, 'train')} | "
            f"val loss {row['val_loss']:.4f}{_score(row, 'val')} | evals/sample {row['vf_evals']:.0f} | "
            f"{row['seconds']:.1f} s{_failures(row)}"
        )

    def note(self, text: str) -> None:
        """Write `text` on a line of its own."""
        self.screen.line(f"note: {text}")

    def _label(self) -> str:
        digits = len(str(self.epochs))
        return f"epoch {self.epoch_index:{digits}d}/{self.epochs}"


class PassBar:
    """A bar over the minibatches of one pass without training (`neuralct.train.loop.evaluate`'s
    `on_batch`), drawn in place on a terminal and wiped when the pass ends; nothing elsewhere.

    ```text
    test [########------------] 5/12  loss 0.4121  acc 0.871  evals/sample 41
    ```

    Args:
        label: what the pass scores (`"test"`).
        stream: where to draw (default: standard error), as for `ProgressBar`.
        live: redraw in place (default: when `stream` is a terminal).
        quiet: draw nothing.
        width: characters of the bar.
        interval: least seconds between two redraws.
    """

    def __init__(
        self,
        label: str = "test",
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        quiet: bool = False,
        width: int = 20,
        interval: float = 0.1,
    ) -> None:
        self.label, self.width = label, width
        self.screen = _Screen(stream, live, quiet, interval)

    def __call__(self, report: BatchReport) -> None:
        """Redraw the bar after a minibatch; wipe it after the last one."""
        self.screen.redraw(f"{self.label} {_bar(report, self.width)}  evals/sample {report.vf_evals:.0f}", False)
        if report.batch == report.batches:
            self.screen.clear()


def lines(stream: TextIO | None = None, *, quiet: bool = False) -> Callable[[str], None]:
    """A writer of one line per step of a long command (a sweep's points, a stability report's
    sections) to `stream` (default: standard error), flushed at once; with `quiet`, one that
    writes nothing."""
    screen = _Screen(stream, False, quiet, 0.0)
    return screen.line


def _bar(report: BatchReport, width: int) -> str:
    """`[#####-----] 9/18  loss 0.4121  acc 0.871`."""
    done = round(width * report.batch / report.batches)
    accuracy = "" if report.accuracy is None else f"  acc {report.accuracy:.3f}"
    return f"[{'#' * done}{'-' * (width - done)}] {report.batch}/{report.batches}  loss {report.loss:.4f}{accuracy}"


def _failures(row: dict) -> str:
    """` | failed: 2 train, 0 val` when samples' solves failed in the epoch, else nothing."""
    train, val = row.get("train_failed") or 0, row.get("val_failed") or 0
    return f" | failed: {train} train, {val} val" if train or val else ""


def _score(row: dict, split: str) -> str:
    """` acc 0.871` for classification, ` mae 0.52` for regression."""
    if row[f"{split}_accuracy"] is not None:
        return f" acc {row[f'{split}_accuracy']:.3f}"
    return f" mae {row[f'{split}_mae']:.4g}"


__all__ = ["PassBar", "Progress", "ProgressBar", "lines"]
