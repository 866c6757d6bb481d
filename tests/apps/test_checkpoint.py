"""Training checkpoints: a full round trip, resuming equals never stopping, atomic writes, named errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from neuralct.data.datasets import load
from neuralct.errors import CheckpointError, InvalidInputError
from neuralct.models.baselines.ode_rnn import ODERNN
from neuralct.train import Checkpoint, load_checkpoint, save_checkpoint, train_epoch


def _run(seed: int) -> tuple[ODERNN, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.Generator]:
    """A fresh model (initialised from `seed`), Adam, a step schedule and a shuffling generator."""
    torch.manual_seed(seed)
    model = ODERNN(2, 8, 2, flow_width=8, flow_depth=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    return model, optimizer, scheduler, torch.Generator().manual_seed(seed)


def _train(model, optimizer, scheduler, generator, data, epochs: int) -> list[float]:
    losses = []
    for _ in range(epochs):
        losses.append(train_epoch(model, data, optimizer, batch_size=16, generator=generator).loss)
        scheduler.step()
    return losses


def _draws(generator: torch.Generator) -> tuple:
    return torch.rand(3), random.random(), np.random.rand(3), torch.rand(3, generator=generator)


def test_round_trip_restores_model_optimizer_scheduler_epoch_extra_and_random_streams(tmp_path) -> None:
    data = load("spirals", "train", size=32, length=8)
    model, optimizer, scheduler, generator = _run(seed=0)
    _train(model, optimizer, scheduler, generator, data, epochs=1)
    path = tmp_path / "run" / "last.pt"
    extra = {"best_accuracy": 0.75, "config": {"model": "ode_rnn", "hidden": [8]}}
    save_checkpoint(
        path, model=model, optimizer=optimizer, epoch=1, scheduler=scheduler, generators=[generator], extra=extra
    )
    expected = _draws(generator)

    fresh, fresh_optimizer, fresh_scheduler, fresh_generator = _run(seed=1)
    random.seed(1)
    np.random.seed(1)
    loaded = load_checkpoint(
        path, model=fresh, optimizer=fresh_optimizer, scheduler=fresh_scheduler, generators=[fresh_generator]
    )

    assert loaded == Checkpoint(epoch=1, extra=extra)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    moments, restored = optimizer.state_dict()["state"], fresh_optimizer.state_dict()["state"]
    assert moments.keys() == restored.keys()
    for index, state in moments.items():
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(restored[index][name], state[name]), (index, name)
    assert fresh_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    assert fresh_scheduler.state_dict() == scheduler.state_dict()
    torch_draw, python_draw, numpy_draw, generator_draw = _draws(fresh_generator)
    assert torch.equal(torch_draw, expected[0])
    assert python_draw == expected[1]
    assert np.array_equal(numpy_draw, expected[2])
    assert torch.equal(generator_draw, expected[3])


def test_resuming_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path) -> None:
    data = load("spirals", "train", size=64, length=12)
    model, optimizer, scheduler, generator = _run(seed=0)
    uninterrupted = _train(model, optimizer, scheduler, generator, data, epochs=4)

    first, first_optimizer, first_scheduler, first_generator = _run(seed=0)
    _train(first, first_optimizer, first_scheduler, first_generator, data, epochs=2)
    path = tmp_path / "last.pt"
    save_checkpoint(
        path, model=first, optimizer=first_optimizer, epoch=2, scheduler=first_scheduler, generators=[first_generator]
    )
    resumed, resumed_optimizer, resumed_scheduler, resumed_generator = _run(seed=1)
    checkpoint = load_checkpoint(
        path, model=resumed, optimizer=resumed_optimizer, scheduler=resumed_scheduler, generators=[resumed_generator]
    )
    remaining = _train(resumed, resumed_optimizer, resumed_scheduler, resumed_generator, data, 4 - checkpoint.epoch)

    assert remaining == uninterrupted[2:]
    for key, value in model.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_a_write_that_fails_midway_leaves_the_previous_checkpoint_and_no_temporary_file(tmp_path, monkeypatch) -> None:
    import errno
    import os

    model, optimizer, _, _ = _run(seed=0)
    path = tmp_path / "last.pt"
    save_checkpoint(path, model=model, optimizer=optimizer, epoch=3)
    before = path.read_bytes()

    def full(descriptor: int) -> None:  # a full disk answers when the data is flushed
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=f"No space left on device: '{path}'"):
        save_checkpoint(path, model=model, optimizer=optimizer, epoch=4, previous=tmp_path / "prev.pt")
    monkeypatch.undo()

    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert path.read_bytes() == before
    assert load_checkpoint(path, model=model, optimizer=optimizer).epoch == 3


def test_the_replaced_checkpoint_is_kept_as_the_previous_one(tmp_path) -> None:
    model, optimizer, _, _ = _run(seed=0)
    last, previous = tmp_path / "last.pt", tmp_path / "prev.pt"
    for epoch in (1, 2, 3):
        save_checkpoint(last, model=model, optimizer=optimizer, epoch=epoch, previous=previous)
    assert load_checkpoint(last, model=model).epoch == 3
    assert load_checkpoint(previous, model=model).epoch == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "prev.pt"]


def _weights_at(path, weight: torch.Tensor) -> int:
    """The byte offset of `weight`'s storage in the checkpoint file at `path`."""
    offset = path.read_bytes().find(weight.detach().numpy().tobytes())
    assert offset > 0
    return offset


def test_a_flipped_bit_in_a_weight_is_a_checkpoint_error_not_a_silent_resume(tmp_path) -> None:
    model, optimizer, _, _ = _run(seed=0)
    path = tmp_path / "last.pt"
    save_checkpoint(path, model=model, optimizer=optimizer, epoch=1)
    data = bytearray(path.read_bytes())
    data[_weights_at(path, model.head.weight) + 2] ^= 0x10  # one bit of the head's first weight
    path.write_bytes(bytes(data))
    fresh, _, _, _ = _run(seed=1)
    with pytest.raises(CheckpointError, match=r"last.pt is damaged: the SHA-256 of its \d+-byte payload"):
        load_checkpoint(path, model=fresh)


@pytest.mark.parametrize("kept", [0.5, 0.999])
def test_a_truncated_checkpoint_is_a_checkpoint_error(tmp_path, kept: float) -> None:
    model, optimizer, _, _ = _run(seed=0)
    path = tmp_path / "last.pt"
    save_checkpoint(path, model=model, optimizer=optimizer, epoch=1)
    data = path.read_bytes()
    path.write_bytes(data[: int(kept * len(data))])  # before: a raw OSError (Invalid argument) from torch.load
    with pytest.raises(CheckpointError, match="is damaged"):
        load_checkpoint(path, model=model)


def test_a_version_1_checkpoint_without_a_checksum_still_loads(tmp_path) -> None:
    model, optimizer, _, _ = _run(seed=0)
    path = tmp_path / "last.pt"
    save_checkpoint(path, model=model, optimizer=optimizer, epoch=2, extra={"best": 0.5})
    payload = path.read_bytes().partition(b"\n")[2]
    state = torch.load(__import__("io").BytesIO(payload), weights_only=True)
    torch.save({"format": "neuralct-checkpoint", "version": 1, **state}, path)
    fresh, _, _, _ = _run(seed=1)
    assert load_checkpoint(path, model=fresh) == Checkpoint(epoch=2, extra={"best": 0.5})
    assert torch.equal(fresh.head.weight, model.head.weight)


def test_a_missing_file_is_a_checkpoint_error_naming_the_path(tmp_path) -> None:
    model, _, _, _ = _run(seed=0)
    path = tmp_path / "nowhere" / "last.pt"
    with pytest.raises(CheckpointError, match="no checkpoint at .*nowhere/last.pt"):
        load_checkpoint(path, model=model)


def test_garbage_truncated_or_foreign_files_are_not_checkpoints(tmp_path) -> None:
    model, optimizer, _, _ = _run(seed=0)
    garbage, truncated, foreign = tmp_path / "garbage.pt", tmp_path / "truncated.pt", tmp_path / "foreign.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    save_checkpoint(truncated, model=model, optimizer=optimizer, epoch=1)
    truncated.write_bytes(truncated.read_bytes()[:200])
    torch.save(model.state_dict(), foreign)
    with pytest.raises(CheckpointError, match="not a neuralct checkpoint .*lacks the header"):
        load_checkpoint(garbage, model=model)
    with pytest.raises(CheckpointError, match="is damaged"):
        load_checkpoint(truncated, model=model)
    with pytest.raises(CheckpointError, match="lacks the format marker"):
        load_checkpoint(foreign, model=model)


def test_another_number_of_generators_than_saved_is_an_invalid_input(tmp_path) -> None:
    model, optimizer, _, generator = _run(seed=0)
    path = tmp_path / "last.pt"
    save_checkpoint(path, model=model, optimizer=optimizer, epoch=1, generators=[generator])
    with pytest.raises(InvalidInputError, match="`generators` must hold the 1 generator.* got 2"):
        load_checkpoint(path, model=model, generators=[generator, torch.Generator()])
    with pytest.raises(InvalidInputError, match="`scheduler` was given"):
        load_checkpoint(path, model=model, generators=[generator], scheduler=_run(seed=0)[2])


def test_a_model_that_does_not_match_the_checkpoint_is_a_checkpoint_error_naming_the_path(tmp_path) -> None:
    model, optimizer, _, _ = _run(seed=0)
    path = tmp_path / "last.pt"
    save_checkpoint(path, model=model, optimizer=optimizer, epoch=1)
    wider = ODERNN(2, 16, 2, flow_width=8, flow_depth=1)
    with pytest.raises(CheckpointError, match=f"checkpoint {path} does not fit `model`"):
        load_checkpoint(path, model=wider)


def test_bad_save_arguments_are_invalid_inputs(tmp_path) -> None:
    model, optimizer, _, _ = _run(seed=0)
    path = tmp_path / "last.pt"
    with pytest.raises(InvalidInputError, match="`epoch` must be a non-negative int"):
        save_checkpoint(path, model=model, optimizer=optimizer, epoch=-1)
    with pytest.raises(InvalidInputError, match="`extra` must be a JSON-able dict"):
        save_checkpoint(path, model=model, optimizer=optimizer, epoch=1, extra={"tensor": torch.zeros(1)})
    with pytest.raises(InvalidInputError, match=r"`generators\[0\]` must be a torch.Generator"):
        save_checkpoint(path, model=model, optimizer=optimizer, epoch=1, generators=[0])
    lambdas = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    lambdas.lr_lambdas[0] = _Factor()
    with pytest.raises(InvalidInputError, match=r"`scheduler` state_dict\['lr_lambdas'\]\[0\]\['factor'\]"):
        save_checkpoint(path, model=model, optimizer=optimizer, epoch=1, scheduler=lambdas)
    assert not path.exists()


class _Factor:
    """A callable learning-rate factor whose state (an arbitrary object) no checkpoint can load safely."""

    def __init__(self) -> None:
        self.factor = object()

    def __call__(self, epoch: int) -> float:
        return 1.0
