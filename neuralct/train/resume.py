"""How `fit` starts in a run folder: a new run, a run started afresh, or a resumed one.

- a folder without `config.json`: `fit(config, run_dir)` starts a new run; resuming is refused
  (nothing to resume);
- `config.json` but no checkpoint (a run killed before its first epoch ended): either call starts
  it from epoch 0 (afresh with `config`, or with the saved config when resuming), with a note;
- `config.json` and `last.pt` or `prev.pt`: a new run is refused (the folder holds a run);
  resuming continues from `last.pt`, or from `prev.pt` (with a note) when `last.pt` is damaged
  or missing.

A resumed run can change the `RESUMABLE` keys (`epochs`, to extend it or end it sooner; `patience`;
`strict`); another key would change the model or its training, and is refused by name.

A run resumes on any number of processes (`neuralct.train.distributed`), whatever number it ran
on: the number is not part of the configuration, since `batch_size` is the global minibatch and
the shuffled order is one generator saved in the checkpoint, so the same minibatches come in the
same order and are dealt out among the processes there are. Every process restores the
checkpoint, whose random streams are rank 0's; the other ranks seed their noise streams again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, InvalidInputError
from .checkpoint import Checkpoint, load_checkpoint
from .config import FitConfig

RESUMABLE = ("epochs", "patience", "strict")


@dataclass(frozen=True)
class Start:
    """How a run starts.

    Args:
        config: the run's configuration (the saved one, with the changes, when resuming).
        resume: whether training continues from a checkpoint (else from epoch 0).
        notes: what the user should be told about the folder.
    """

    config: FitConfig
    resume: bool
    notes: tuple[str, ...] = ()


def plan_start(config: FitConfig | None, run_dir: Path, resume: bool, changes: Mapping[str, Any]) -> Start:
    """How the run in `run_dir` starts (see the module docstring); nothing is written.

    Raises:
        InvalidInputError: nothing to resume, a folder that holds a run when not resuming, no
            `config` for a new run, `changes` without `resume`, or a change of a key that is not
            in `RESUMABLE`.
    """
    saved = run_dir / "config.json"
    checkpointed = any((run_dir / name).is_file() for name in ("last.pt", "prev.pt"))
    if resume:
        if not saved.is_file():
            raise InvalidInputError(f"nothing to resume in {run_dir}: no config.json (start the run without --resume)")
        config = _changed(FitConfig.from_file(saved), changes)
        if checkpointed:
            return Start(config, resume=True)
        note = f"{run_dir} has no completed epoch (no last.pt): starting it from epoch 0 with its saved config"
        return Start(config, resume=False, notes=(note,))
    if changes:
        raise InvalidInputError(f"`changes` ({', '.join(changes)}) apply to a resumed run; put them in `config`")
    if config is None:
        raise InvalidInputError("`config` is needed to start a run")
    if saved.is_file() and checkpointed:
        raise InvalidInputError(f"{run_dir} already holds a run; resume it or choose another folder")
    if saved.is_file():
        note = f"{run_dir} holds a run with no completed epoch (no last.pt): starting it afresh"
        return Start(config, resume=False, notes=(note,))
    return Start(config, resume=False)


def _changed(saved: FitConfig, changes: Mapping[str, Any]) -> FitConfig:
    """`saved` with `changes` of the `RESUMABLE` keys; other keys may only repeat their saved value."""
    config = FitConfig.from_mapping({**saved.as_dict(), **changes})
    refused = [key for key in changes if key not in RESUMABLE and getattr(config, key) != getattr(saved, key)]
    if refused:
        raise InvalidInputError(
            f"a resumed run can change only {', '.join(RESUMABLE)}; got {', '.join(refused)}, which would "
            "change the model or its training (start a new run for that)"
        )
    return config


def restore(run_dir: Path, state: dict[str, Any]) -> tuple[Checkpoint, str | None]:
    """Load the last good checkpoint of `run_dir` into `state`'s objects (the keyword arguments of
    `load_checkpoint`): `last.pt`, else `prev.pt`, with a note saying why.

    Raises:
        CheckpointError: `last.pt` is damaged or missing and there is no good `prev.pt`.
    """
    last, previous = run_dir / "last.pt", run_dir / "prev.pt"
    try:
        return load_checkpoint(last, **state), None
    except CheckpointError as error:
        if not previous.is_file():
            raise CheckpointError(
                f"{error}; there is no previous checkpoint ({previous.name}) to fall back on (delete {last} "
                "to start the run again from epoch 0)"
            ) from error
        checkpoint = load_checkpoint(previous, **state)
        return checkpoint, f"{error}; resuming from {previous} (epoch {checkpoint.epoch}) instead"
