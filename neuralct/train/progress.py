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
"""

from __future__ import annotations

import sys
import time
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


class ProgressBar(Progress):
    """Progress of a run's epochs, written to `stream`.

    Args:
        epochs: the run's number of epochs (for the `epoch k/N` label).
        stream: where to write (default: standard error).
        live: redraw a bar per minibatch (default: when `stream` is a terminal).
        width: characters of the bar.
        interval: the least seconds between two redraws (the last minibatch is always drawn).
    """

    def __init__(
        self,
        epochs: int,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        width: int = 20,
        interval: float = 0.1,
    ) -> None:
        self.epochs, self.stream, self.width, self.interval = epochs, stream or sys.stderr, width, interval
        self.live = self.stream.isatty() if live is None else live
        self.epoch_index, self.drawn_at, self.drawn = 1, -float("inf"), 0

    def begin(self, epoch: int) -> None:
        """Label the coming bar with `epoch`."""
        self.epoch_index, self.drawn, self.drawn_at = epoch, 0, -float("inf")

    def batch(self, report: BatchReport) -> None:
        """Redraw the bar after a minibatch (nothing when not live)."""
        now = time.perf_counter()
        if not self.live or (now - self.drawn_at < self.interval and report.batch < report.batches):
            return
        done = round(self.width * report.batch / report.batches)
        bar = "#" * done + "-" * (self.width - done)
        accuracy = "" if report.accuracy is None else f"  acc {report.accuracy:.3f}"
        line = (
            f"{self._label()} [{bar}] {report.batch}/{report.batches}  loss {report.loss:.4f}{accuracy}"
            f"  evals/step {report.vf_evals:.0f}"
        )
        self._write("\r" + line.ljust(self.drawn))
        self.drawn_at, self.drawn = now, len(line)

    def epoch(self, row: dict) -> None:
        """Replace the bar with the finished epoch's line (a metrics row of `neuralct.train.run`)."""
        self.epoch_index = row["epoch"]
        line = (
            f"{self._label()}  train loss {row['train_loss']:.4f}{_score(row, 'train')} | "
            f"val loss {row['val_loss']:.4f}{_score(row, 'val')} | evals/sample {row['vf_evals']:.0f} | "
            f"{row['seconds']:.1f} s{_failures(row)}"
        )
        self._write(("\r" if self.live else "") + line.ljust(self.drawn) + "\n")

    def note(self, text: str) -> None:
        """Write `text` on a line of its own."""
        self._write(("\r" if self.live else "") + f"note: {text}".ljust(self.drawn) + "\n")
        self.drawn = 0

    def _label(self) -> str:
        digits = len(str(self.epochs))
        return f"epoch {self.epoch_index:{digits}d}/{self.epochs}"

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _failures(row: dict) -> str:
    """` | failed: 2 train, 0 val` when samples' solves failed in the epoch, else nothing."""
    train, val = row.get("train_failed") or 0, row.get("val_failed") or 0
    return f" | failed: {train} train, {val} val" if train or val else ""


def _score(row: dict, split: str) -> str:
    """` acc 0.871` for classification, ` mae 0.52` for regression."""
    if row[f"{split}_accuracy"] is not None:
        return f" acc {row[f'{split}_accuracy']:.3f}"
    return f" mae {row[f'{split}_mae']:.4g}"


__all__ = ["Progress", "ProgressBar"]
