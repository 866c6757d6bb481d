"""Atomic training checkpoints that a run resumes from bit for bit.

A checkpoint holds everything that decides what the next epoch computes: the model's and the
optimizer's state (Adam's moments included), the learning-rate scheduler's state, the number of
completed epochs, and every random stream (torch's global CPU and CUDA generators, Python's
`random`, NumPy's global generator and the `torch.Generator`s that shuffle minibatches), plus a
JSON-able `extra` dict for the caller (best metric, config). Resuming from it and training on gives
the same parameters and losses as a run that was never interrupted.

The file holds only tensors, numbers, strings and containers of them, so it loads with
`torch.load(..., weights_only=True)`: opening a checkpoint never runs code from the file. Writes are
atomic: the file goes to a temporary sibling, is flushed to disk, then renamed over `path`, so a
crash mid-write leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import os
import pickle
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import CheckpointError, InvalidInputError

_FORMAT = "neuralct-checkpoint"
_VERSION = 1
_PRIMITIVES = (str, int, float, bool, complex, type(None), torch.dtype, torch.device)


@dataclass(frozen=True)
class Checkpoint:
    """What a loaded checkpoint tells the caller besides the state it restored.

    Args:
        epoch: the number of epochs completed when it was saved (resume at this epoch index).
        extra: the JSON-able dict given to `save_checkpoint` (`{}` when none was).
    """

    epoch: int
    extra: dict[str, Any]


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    generators: tuple[torch.Generator, ...] | list[torch.Generator] = (),
    extra: dict[str, Any] | None = None,
) -> None:
    """Write the training state to `path` atomically (parent directories are created).

    Args:
        path: the checkpoint file; an existing one is replaced only once the new one is on disk.
        model: the model whose `state_dict` is saved.
        optimizer: the optimizer whose `state_dict` (moments, step counts, learning rates) is saved.
        epoch: the number of completed epochs, a non-negative int.
        scheduler: the learning-rate scheduler, if any.
        generators: the `torch.Generator`s of the run (minibatch shuffling, ...), in a fixed order;
            `load_checkpoint` takes the same number in the same order.
        extra: a JSON-able dict stored alongside (best metric, config, ...).

    Raises:
        InvalidInputError: `epoch` is not a non-negative int, `extra` is not a JSON-able dict, a
            generator is not a `torch.Generator`, or a state dict holds an object other than tensors,
            numbers, strings and containers of them (it could not be loaded safely).
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise InvalidInputError(f"`epoch` must be a non-negative int (the number of completed epochs); got {epoch!r}")
    state = {
        "format": _FORMAT,
        "version": _VERSION,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": _rng_state(_check_generators(generators)),
        "extra": _extra_json(extra),
    }
    for name in ("model", "optimizer", "scheduler"):
        _check_storable(state[name], f"`{name}` state_dict")
    _write_atomically(Path(path), state)


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    generators: tuple[torch.Generator, ...] | list[torch.Generator] = (),
    restore_rng: bool = True,
) -> Checkpoint:
    """Restore the training state saved at `path` into the given objects.

    Args:
        path: a file written by `save_checkpoint`.
        model: receives the saved parameters and buffers (strictly: the keys and shapes must match).
        optimizer: receives the saved optimizer state (`None`: not restored, e.g. for evaluation).
        scheduler: receives the saved scheduler state (`None`: not restored).
        generators: receive the saved generator states; as many as were saved, in the same order.
        restore_rng: also restore the global random streams (torch CPU and CUDA, Python `random`,
            NumPy) and `generators`.

    Returns:
        The completed epochs and the `extra` dict that were saved.

    Raises:
        CheckpointError: `path` does not exist, is not a neuralct checkpoint (or is truncated), or its
            model or optimizer state does not fit `model` / `optimizer`.
        InvalidInputError: `generators` has another length than was saved, or a `scheduler` is given
            but none was saved.
    """
    path = Path(path)
    state = _read(path)
    generators = _check_generators(generators)
    saved = state["rng"]["generators"]
    if restore_rng and len(generators) != len(saved):
        raise InvalidInputError(
            f"`generators` must hold the {len(saved)} generator(s) saved in checkpoint {path}, "
            f"in the same order; got {len(generators)}"
        )
    if scheduler is not None and state["scheduler"] is None:
        raise InvalidInputError(f"`scheduler` was given but checkpoint {path} holds no scheduler state")
    _load_into(model, state["model"], path, "model")
    if optimizer is not None:
        _load_into(optimizer, state["optimizer"], path, "optimizer")
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if restore_rng:
        _restore_rng(state["rng"], generators)
    return Checkpoint(epoch=state["epoch"], extra=json.loads(state["extra"]))


def _check_generators(generators: Any) -> list[torch.Generator]:
    generators = list(generators)
    for index, generator in enumerate(generators):
        if not isinstance(generator, torch.Generator):
            raise InvalidInputError(f"`generators[{index}]` must be a torch.Generator; got {type(generator).__name__}")
    return generators


def _extra_json(extra: Any) -> str:
    """`extra` as JSON text: a checkpoint keeps it verbatim, and what loads is what JSON round-trips."""
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise InvalidInputError(f"`extra` must be a JSON-able dict or None; got {type(extra).__name__}")
    try:
        return json.dumps(extra)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"`extra` must be a JSON-able dict; {error}") from error


def _check_storable(value: Any, where: str) -> None:
    """Refuse at save time what `weights_only` loading would refuse, so no unloadable file is written."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, where)
            _check_storable(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_storable(item, f"{where}[{index}]")
    elif not isinstance(value, (Tensor, *_PRIMITIVES)):
        raise InvalidInputError(
            f"{where} must hold only tensors, numbers, strings and containers of them; got {type(value).__name__}"
        )


def _rng_state(generators: list[torch.Generator]) -> dict[str, Any]:
    _, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        # NumPy arrays and scalars are not weights_only-loadable: the key goes as an int64 tensor.
        "numpy": {
            "key": torch.from_numpy(key.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "generators": [generator.get_state() for generator in generators],
    }


def _restore_rng(rng: dict[str, Any], generators: list[torch.Generator]) -> None:
    torch.set_rng_state(rng["torch"])
    # A GPU run resumed on fewer (or no) GPUs restores the devices that exist.
    for device, cuda_state in zip(range(torch.cuda.device_count()), rng["cuda"]):
        torch.cuda.set_rng_state(cuda_state, device)
    random.setstate(rng["python"])
    numpy = rng["numpy"]
    key = numpy["key"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, numpy["pos"], numpy["has_gauss"], numpy["gauss"]))
    for generator, generator_state in zip(generators, rng["generators"]):
        generator.set_state(generator_state)


def _write_atomically(path: Path, state: dict[str, Any]) -> None:
    """Save to a temporary file beside `path`, fsync it, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fixed sibling name: a write killed outright leaves one stale file, overwritten next time.
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if os.name == "posix":
        # The rename itself survives a power cut only once the directory entry is on disk.
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: the file does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a readable neuralct checkpoint (corrupt or truncated?): {error}"
        ) from error
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise CheckpointError(f"{path} is not a neuralct checkpoint (it lacks the format marker {_FORMAT!r})")
    if state.get("version") != _VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state.get('version')!r}; this neuralct reads {_VERSION}")
    return state


def _load_into(target: nn.Module | torch.optim.Optimizer, state: dict[str, Any], path: Path, name: str) -> None:
    try:
        target.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError) as error:
        raise CheckpointError(f"checkpoint {path} does not fit `{name}`: {error}") from error
