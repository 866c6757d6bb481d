"""Atomic training checkpoints that a run resumes from bit for bit.

A checkpoint holds everything that decides what the next epoch computes: the model's and the
optimizer's state (Adam's moments included), the learning-rate scheduler's state, the number of
completed epochs, and every random stream (torch's global CPU and CUDA generators, Python's
`random`, NumPy's global generator and the `torch.Generator`s that shuffle minibatches), plus a
JSON-able `extra` dict for the caller (best metric, config). Resuming from it and training on gives
the same parameters and losses as a run that was never interrupted.

The file is one header line, `neuralct-checkpoint 2 sha256=<hex>`, and the payload that
`torch.save` writes; the payload's SHA-256 is checked before anything is read from it, so a
flipped bit or a truncated file fails with a `CheckpointError` instead of resuming with other
weights. The payload holds only tensors, numbers, strings and containers of them, so it loads with
`torch.load(..., weights_only=True)`: opening a checkpoint never runs code from the file. Writes are
atomic: the file goes to a temporary sibling, is flushed to disk, then renamed over `path`, so a
crash mid-write leaves the previous checkpoint whole; the replaced file can be kept as `previous`
(`prev.pt` in a run folder), a checkpoint to fall back on when `path` is damaged. Files of
version 1 (before the checksum) still load, unverified.
"""

from __future__ import annotations

import hashlib
import io
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

from .._checks import check_int, describe
from ..errors import CheckpointError, InvalidInputError
from .folder import write_atomically

_FORMAT = "neuralct-checkpoint"
_VERSION = 2
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
    previous: str | os.PathLike[str] | None = None,
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
        previous: keep the checkpoint that `path` held as this file (renamed, so that one whole
            checkpoint is on disk at every moment), or `None` to let it go.

    Raises:
        InvalidInputError: `epoch` is not a non-negative int, `extra` is not a JSON-able dict, a
            generator is not a `torch.Generator`, or a state dict holds an object other than tensors,
            numbers, strings and containers of them (it could not be loaded safely).
        OSError: the file cannot be written (a read-only folder, a full disk), naming it.
    """
    check_int("epoch", epoch, 0)
    state = {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": _rng_state(_check_generators(generators)),
        "extra": _extra_json(extra),
    }
    for name in ("model", "optimizer", "scheduler"):
        _check_storable(state[name], f"`{name}` state_dict")
    payload = io.BytesIO()
    torch.save(state, payload)
    header = f"{_FORMAT} {_VERSION} sha256={hashlib.sha256(payload.getbuffer()).hexdigest()}\n".encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, header + payload.getvalue(), previous=None if previous is None else Path(previous))


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
        CheckpointError: `path` does not exist, is not a neuralct checkpoint, is damaged (its
            checksum does not match: a flipped bit, a truncated file), or its model or optimizer
            state does not fit `model` / `optimizer`.
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
            raise InvalidInputError(f"`generators[{index}]` must be a torch.Generator; got {describe(generator)}")
    return generators


def _extra_json(extra: Any) -> str:
    """`extra` as JSON text: a checkpoint keeps it verbatim, and what loads is what JSON round-trips."""
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise InvalidInputError(f"`extra` must be a JSON-able dict or None; got {describe(extra)}")
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
            f"{where} must hold only tensors, numbers, strings and containers of them; got {describe(value)}"
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


def _read(path: Path) -> dict[str, Any]:
    """The state saved at `path`, its checksum verified before it is parsed."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: the file does not exist")
    data = path.read_bytes()
    if data.startswith(b"PK"):  # version 1: a bare torch.save zip archive, without a checksum
        return _parse(path, data, version=1)
    header, _, payload = data.partition(b"\n")
    fields = header.decode("ascii", errors="replace").split(" ")
    if len(fields) != 3 or fields[0] != _FORMAT or not fields[2].startswith("sha256="):
        raise CheckpointError(f"{path} is not a neuralct checkpoint (it lacks the header {_FORMAT!r})")
    if fields[1] != str(_VERSION):
        raise CheckpointError(f"{path} has checkpoint version {fields[1]!r}; this neuralct reads 1 and {_VERSION}")
    if hashlib.sha256(payload).hexdigest() != fields[2].removeprefix("sha256="):
        raise CheckpointError(
            f"{path} is damaged: the SHA-256 of its {len(payload)}-byte payload does not match the one "
            "saved with it (a flipped bit, or a file cut short)"
        )
    return _parse(path, payload, version=_VERSION)


def _parse(path: Path, data: bytes, version: int) -> dict[str, Any]:
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a readable neuralct checkpoint (corrupt or truncated?): {error}"
        ) from error
    if version == 1 and (not isinstance(state, dict) or state.get("format") != _FORMAT or state.get("version") != 1):
        raise CheckpointError(f"{path} is not a neuralct checkpoint (it lacks the format marker {_FORMAT!r})")
    return state


def _load_into(target: nn.Module | torch.optim.Optimizer, state: dict[str, Any], path: Path, name: str) -> None:
    try:
        target.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError) as error:
        raise CheckpointError(f"checkpoint {path} does not fit `{name}`: {error}") from error
